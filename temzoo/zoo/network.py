"""Is the Hugging Face Hub reachable? Decided fast, once, before ``huggingface_hub`` is imported.

``huggingface_hub`` reads ``HF_HUB_OFFLINE`` and ``HF_ENDPOINT`` into constants when it is imported (and smp imports
it), and with no network each Hub call retries for ~23 s. So the entry points (the CLI's ``main()`` and ``app.py``)
call :func:`configure` first thing: it probes the endpoint with a ~1 s TCP connect and, when the Hub is unreachable,
sets ``HF_HUB_OFFLINE=1`` before anything imports the client. Library code asks :func:`online` and passes
``local_files_only=True`` when it says no, so a notebook that never called :func:`configure` does not stall either.
Nothing happens at import time.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 1.0
_RECHECK_S = 60.0  # a probe result is trusted this long (the app reruns its script on every click)
_TRUE = {"1", "on", "yes", "true", "y"}

_state: dict[str, tuple[float, bool]] = {}  # endpoint -> (monotonic time of probe, reachable)


def endpoint() -> str:
    """The Hub endpoint in use: ``huggingface_hub``'s constant once imported, else ``$HF_ENDPOINT``."""
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        return str(hub.ENDPOINT).rstrip("/")
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline_forced() -> bool:
    """True when the environment (or the already-imported client) says offline."""
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None and getattr(hub, "HF_HUB_OFFLINE", False):
        return True
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return env.strip().lower() in _TRUE


def probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Can a TCP connection to ``url``'s host be opened within ``timeout`` seconds (DNS included)?"""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result = [False]

    def _connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result[0] = True
        except OSError:
            pass

    # DNS resolution has no timeout of its own; a daemon thread bounds the whole attempt.
    t = threading.Thread(target=_connect, daemon=True)
    t.start()
    t.join(timeout + 0.2)
    return result[0]


def online(refresh: bool = False) -> bool:
    """Is the Hub reachable? False at once when offline is forced; otherwise a cached ~1 s probe."""
    if offline_forced():
        return False
    ep = endpoint()
    now = time.monotonic()
    cached = _state.get(ep)
    if cached is None or refresh or now - cached[0] > _RECHECK_S:
        cached = (now, probe(ep))
        _state[ep] = cached
    return cached[1]


def configure() -> bool:
    """Decide online/offline before ``huggingface_hub`` is imported; returns True when online.

    Sets ``HF_HUB_OFFLINE=1`` when the endpoint is unreachable (and the client is not imported yet), so every later
    Hub call fails fast from the cache instead of retrying. An explicit ``HF_HUB_OFFLINE`` is respected. Idempotent
    and cheap after the first call.
    """
    if offline_forced():
        return False
    is_online = online()
    if not is_online and "huggingface_hub" not in sys.modules:
        os.environ["HF_HUB_OFFLINE"] = "1"
    return is_online
