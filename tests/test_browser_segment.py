"""End to end: load a real DM3 on the Load page, segment it on the Segment page in headless Chromium."""

from __future__ import annotations

import pytest

from tests.util import wait_for_app

pytestmark = pytest.mark.browser

DM3 = "dm/rosettasciio/2D/multi_signal.dm3"


def test_segment_real_dm3_in_browser(app_server, page, shared_data, tiny_checkpoint, artifacts):
    page.goto(app_server)
    wait_for_app(page)
    page.locator('input[type="file"]').set_input_files(str(shared_data / DM3))
    page.locator('[data-testid="stSidebar"]', has_text="0.01775 nm/px").wait_for(timeout=60_000)
    page.locator('[data-testid="stSidebarNavLink"]', has_text="Segment").click()
    wait_for_app(page)
    page.get_by_role("heading", name="Segment").wait_for()
    box = page.get_by_label("... or a checkpoint folder / Hub repo id")
    box.wait_for(state="attached")
    if not box.is_visible():  # the model expander is collapsed when a model is already current
        page.locator('[data-testid="stExpander"] summary', has_text="Model").first.click()
    box.fill(str(tiny_checkpoint))
    box.press("Enter")
    wait_for_app(page)
    page.locator('[data-testid="stMetric"]', has_text="Objects").first.wait_for(timeout=120_000)
    # linked maps + size and confidence histograms
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"]').length >= 3",
                           timeout=120_000)
    # four panels, each an SVG <image> holding the PNG of its map
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')[0]"
        ".querySelectorAll('image').length >= 4", timeout=60_000)
    assert page.get_by_text("mask overlay").count() >= 1
    # Grad-CAM importance for the predicted foreground
    page.get_by_role("button", name="Explain").click()
    wait_for_app(page)
    page.get_by_text("gradcam:").first.wait_for(timeout=120_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    # the export bundle (temzoo.export.build_bundle), the importance map included once explained
    page.get_by_role("button", name="multi_signal_importance.tif").wait_for(timeout=60_000)
    names = {t.strip() for t in page.locator('[data-testid="stDownloadButton"]').all_inner_texts()}
    suffixes = ("_mask.png", "_mask.tif", "_probability.tif", "_confidence.tif", "_importance.tif", "_particles.csv",
                "_overlay.png", ".hspy", "_summary.json")
    assert names == {f"multi_signal{s}" for s in suffixes}, names
    page.set_viewport_size({"width": 1400, "height": 2200})
    wait_for_app(page)
    page.wait_for_timeout(800)
    page.screenshot(path=str(artifacts / "segment_multi_signal_dm3.png"), full_page=True)
