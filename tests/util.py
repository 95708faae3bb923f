"""Helpers for browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def wait_for_app(page, timeout_ms: int = 60_000) -> None:
    """Wait until the Streamlit app is rendered and its script run has finished."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms
    )


def nav(page, name: str) -> None:
    """Click a page in the sidebar navigation and wait for its heading."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(name, exact=True).click()
    wait_for_app(page)
    page.get_by_role("heading", name=name).first.wait_for()


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.get_by_role("option", name=option).first.click()
    wait_for_app(page)


def budget_epochs(page, n: int) -> None:
    """On the Fine-tune / Compare pages: switch the budget to epochs and set ``n``."""
    page.get_by_text("epochs", exact=True).first.click()
    wait_for_app(page)
    epochs = page.locator('[data-testid="stNumberInput"]').filter(has_text="Epochs").locator("input").first
    epochs.fill(str(n))
    epochs.press("Enter")


def start_finetune(page, base: str, epochs: int, name: str) -> None:
    """On the Fine-tune page: from ``base``, ``epochs`` epochs, the result named ``name`` in the zoo; starts the job."""
    choose(page, "Start from", base)
    budget_epochs(page, epochs)
    wait_for_app(page)
    box = page.get_by_label("Name of the result in your zoo")
    box.fill(name)
    box.press("Enter")
    wait_for_app(page)
    page.get_by_role("button", name="Start fine-tuning").click()
    wait_for_app(page)


def compare_two_strategies(page, base: str, timeout_ms: int = 300_000) -> None:
    """On the Compare page: from ``base``, full and freeze-encoder (the default three less l2sp), 1 epoch each; checks
    the plan line shown before starting, starts, and waits until both runs have finished."""
    choose(page, "Start from", base)
    strategies = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Strategies").first
    strategies.locator("input").first.click()
    page.keyboard.press("Backspace")  # full, freeze-encoder, l2sp -> full, freeze-encoder
    page.keyboard.press("Escape")
    wait_for_app(page)
    # (sizes 1, 2, 4: with one training image beside the validation one, only size 1 runs)
    budget_epochs(page, 1)
    wait_for_app(page)
    page.get_by_text("2 runs, one after another, 1 epochs each").first.wait_for()
    page.get_by_role("button", name="Start comparison").click()
    wait_for_app(page)
    page.get_by_text("2 of 2 runs finished").first.wait_for(timeout=timeout_ms)
    wait_for_app(page)


REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")


def page_file(name: str) -> str:
    """Absolute path of ``pages/<name>.py`` (AppTest resolves relative paths against the calling test file)."""
    return str(REPO / "pages" / f"{name}.py")


@dataclass
class AppServer:
    url: str
    proc: subprocess.Popen
    home: Path
    log_path: Path


def _free_port() -> int:
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
