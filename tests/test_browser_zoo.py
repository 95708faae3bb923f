"""The Zoo page in a real browser against a real ``streamlit run app.py``: cards, badges, "use this model"."""

from __future__ import annotations

import shutil

from tests.util import wait_for_app


def test_zoo_page_in_the_browser(app_server, page, artifacts, tiny_checkpoint, tmp_path_factory):
    # The shared server's TEMZOO_HOME is a session temp folder named server_home*; the page re-reads the local zoo
    # on every run, so a checkpoint placed there now shows up as a "your zoo" model.
    homes = sorted(tmp_path_factory.getbasetemp().glob("server_home*"))
    assert homes, "app_server fixture did not create its TEMZOO_HOME"
    shutil.copytree(tiny_checkpoint, homes[0] / "zoo" / "browser-demo", dirs_exist_ok=True)

    # Enter through the router (a fresh server given /zoo first runs pages/zoo.py without app.py: Streamlit's legacy
    # pages/ discovery), then navigate as a user does.
    page.goto(app_server)
    wait_for_app(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Zoo", exact=True).click()
    wait_for_app(page)
    page.get_by_role("heading", name="Zoo").first.wait_for()
    page.get_by_text("browser-demo").first.wait_for()
    assert page.get_by_text("your zoo").count() >= 1
    assert page.get_by_text("Offline: showing bundled").count() == 1
    page.get_by_text("Model card").first.click()
    page.get_by_text("Intended use").first.wait_for()
    page.screenshot(path=str(artifacts / "zoo_page.png"), full_page=True)

    card = page.locator(".st-key-zoo_model_0, [class*='st-key-zoo_model_']").filter(has_text="browser-demo").first
    card.get_by_role("button", name="Use this model").click()
    wait_for_app(page)
    page.get_by_text("Current model: browser-demo").first.wait_for()
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "browser-demo" in sidebar.inner_text()
    page.screenshot(path=str(artifacts / "zoo_page_selected.png"), full_page=True)
