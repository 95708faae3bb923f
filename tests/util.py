"""Helpers for browser tests."""

from __future__ import annotations


def wait_for_app(page, timeout_ms: int = 60_000) -> None:
    """Wait until the Streamlit app is rendered and its script run has finished."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms
    )


from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")


def page_file(name: str) -> str:
    """Absolute path of ``pages/<name>.py`` (AppTest resolves relative paths against the calling test file)."""
    return str(REPO / "pages" / f"{name}.py")
