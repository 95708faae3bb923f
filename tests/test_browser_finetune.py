"""Fine-tune page in a real browser against a real ``streamlit run app.py``: start a short job, see its curve."""

from __future__ import annotations

from tests.labelled_sets import make_disk_set
from tests.util import budget_epochs, choose, wait_for_app


def test_start_a_job_and_watch_its_curve(app_server, page, artifacts, tmp_path):
    folder = make_disk_set(tmp_path / "disks", n=4, size=64)  # a labelled set the server can read

    page.goto(app_server)
    wait_for_app(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Fine-tune", exact=True).click()
    wait_for_app(page)
    page.get_by_role("heading", name="Fine-tune").first.wait_for()

    choose(page, "Labelled set", "Another folder…")
    box = page.get_by_label("Folder with images/ and masks/")
    box.fill(str(folder))
    box.press("Enter")
    wait_for_app(page)
    page.get_by_text("4 labelled images").first.wait_for()
    choose(page, "Start from", "scratch (random weights)")
    choose(page, "Strategy", "scratch")
    budget_epochs(page, 1)
    wait_for_app(page)
    page.get_by_role("button", name="Start fine-tuning").click()
    wait_for_app(page)

    # The fragment polls the job folder every 2 s while the job runs; the curve appears after the first epoch.
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=180_000)
    page.get_by_text("Saved to your zoo").first.wait_for(timeout=120_000)  # job over: no process left behind
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts / "finetune_curve.png"), full_page=True)
    assert "done" in page.locator('[data-testid="stMetric"]').first.inner_text()
    page.get_by_role("button", name="Use this model").click()
    wait_for_app(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("zoo/scratch-").first.wait_for(timeout=20_000)
    page.screenshot(path=str(artifacts / "finetune_used.png"), full_page=True)
