"""Shared fixtures: real data from ../shared/data, a tiny checkpoint, a real Streamlit server and headless Chromium."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub (smp does): with no network each Hub miss stalls ~23 s otherwise.
# Tests that exercise the Hub run against a loopback server in a subprocess with their own environment.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TEMZOO_TEST", "1")

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Subprocesses (job workers, the app server, CLI runs) import this checkout's temzoo, as the editable install that
# requirements.txt ends with makes them do for a user; the shared CI venv has no checkout installed.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
SHARED_DATA = Path(os.environ.get("TEMZOO_SHARED_DATA") or REPO.parent / "shared" / "data")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests needing it skip with the reason when the folder is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the checkout in CI)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _temzoo_home(tmp_path_factory, monkeypatch):
    """Each test gets its own TEMZOO_HOME so local zoo and job folders never leak between tests."""
    monkeypatch.setenv("TEMZOO_HOME", str(tmp_path_factory.mktemp("temzoo_home")))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised (seeded) checkpoint folder in the real format, at 0.05 nm/px."""
    import torch

    from temzoo.zoo.checkpoint import ModelSpec, TemzooMeta, save_checkpoint

    torch.manual_seed(0)
    spec = ModelSpec()
    model = spec.build().eval()
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    meta = TemzooMeta(pixel_size_nm=0.05, tile_size=256, description="random weights, for tests")
    return save_checkpoint(model, folder, meta)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """A real ``streamlit run app.py`` on loopback with its own TEMZOO_HOME; yields its base URL."""
    from tests.util import start_app_server, stop_app_server

    try:
        server = start_app_server(tmp_path_factory.mktemp("server_home"))
    except RuntimeError as err:
        pytest.fail(str(err))
    yield server.url
    stop_app_server(server)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (never a browser download)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()


ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture()
def artifacts() -> Path:
    """Folder for screenshots kept as test artefacts (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
