"""End to end in a real browser: upload a DM4 -> pick a zoo model -> segment with confidence and importance -> draw a
label -> fine-tune a short job -> compare -> save to the local zoo -> push to the loopback Hub.

The app server here is our own (not conftest's ``app_server``): it needs HF_ENDPOINT pointing at the loopback Hub,
HF_HUB_OFFLINE=0 and a fake HF_TOKEN, and its own TEMZOO_HOME with a zoo model in it. Screenshots of every step go
to test-artifacts/e2e-*.png. At the end the token is searched for in every file the server wrote and in each page's
HTML.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class AppServer:
    url: str
    proc: subprocess.Popen
    home: Path
    log_path: Path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app_server(home: Path, env: dict | None = None, extra_args: list[str] = ()) -> AppServer:
    """``streamlit run app.py`` on loopback with its own TEMZOO_HOME (and environment); waits for its health check."""
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    e = dict(os.environ if env is None else env)
    e.update(TEMZOO_HOME=str(home), PYTHONUNBUFFERED="1")
    e.setdefault("HF_HUB_OFFLINE", "1")
    log_path = home / "streamlit.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", *extra_args],
            cwd=REPO, env=e, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return AppServer(url, proc, home, log_path)
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            break
    proc.terminate()
    raise RuntimeError(f"streamlit did not start; log: {log_path.read_text()[-2000:]}")


def stop_app_server(server: AppServer) -> str:
    """Stop the server (this process's own child, by its pid) and return its log."""
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=10)
    return server.log_path.read_text(errors="replace")
