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
    page.locator('[data-testid="stSidebar"]', has_text="multi_signal").wait_for(timeout=60_000)
    page.locator('[data-testid="stSidebarNavLink"]', has_text="Segment").click()
    wait_for_app(page)
    box = page.get_by_label("... or a checkpoint folder / Hub repo id")
    if box.count() == 0 or not box.is_visible():  # the model expander is collapsed when a model is current
        page.get_by_text("Model", exact=True).first.click()
    box.fill(str(tiny_checkpoint))
    box.press("Enter")
    wait_for_app(page)
    page.locator('[data-testid="stMetric"]', has_text="Objects").first.wait_for(timeout=120_000)
    charts = page.locator('[data-testid="stPlotlyChart"]')
    charts.first.wait_for()
    assert charts.count() >= 3  # linked maps + size and confidence histograms
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
    assert page.locator('[data-testid="stDownloadButton"]').count() == 7
    page.set_viewport_size({"width": 1400, "height": 2200})
    wait_for_app(page)
    page.wait_for_timeout(800)
    page.screenshot(path=str(artifacts / "segment_multi_signal_dm3.png"), full_page=True)
