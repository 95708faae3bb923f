"""A bookmarked page opened first on a freshly started server (Streamlit's legacy pages/ discovery would run the page
file alone) still gets app.py's navigation and sidebar, lands on the page asked for and keeps the URL's query."""

from __future__ import annotations

import pytest

from tests.util import start_app_server, stop_app_server, wait_for_app

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("path, heading", [("zoo", "Zoo"), ("segment", "Segment")])
def test_first_visit_to_a_page_url_goes_through_app(browser, tmp_path, path, heading):
    server = start_app_server(tmp_path / "home")
    try:
        page = browser.new_page()
        page.goto(f"{server.url}/{path}?session=bookmarked")
        wait_for_app(page)
        page.get_by_role("heading", name=heading).first.wait_for()
        nav = page.locator('[data-testid="stSidebarNav"]')
        nav.get_by_text("Models", exact=True).wait_for()  # app.py's st.navigation sections, not the file list
        assert nav.get_by_text("app", exact=True).count() == 0
        assert page.url.split("?")[0].endswith(f"/{path}")
        assert "session=bookmarked" in page.url
        page.close()
    finally:
        log = stop_app_server(server)
    assert "Traceback" not in log
