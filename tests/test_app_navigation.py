"""Every page of the app renders through the real router without an exception or an error box."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.util import APP

PAGES = ["load", "label", "zoo", "segment", "batch", "finetune", "compare", "share", "teach"]


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_error(page):
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title or at.header or at.markdown, f"{page} rendered nothing"


def test_sidebar_reports_device():
    at = AppTest.from_file(APP, default_timeout=120).run()
    lines = " ".join(m.value for m in at.sidebar.markdown)
    assert "Device:" in lines and ("cpu" in lines or "cuda" in lines)
