"""End to end: a real ``streamlit run`` server, headless Chromium, a real DM4 uploaded through the file uploader."""

from __future__ import annotations

import pytest

from tests.util import wait_for_app

pytestmark = pytest.mark.browser

JEOL = "dm/particlespy/JEOL HAADF Image.dm4"


def test_upload_dm4_shows_image_and_pixel_size(app_server, page, shared_data, artifacts):
    page.goto(app_server)
    wait_for_app(page)
    page.locator('input[type="file"]').set_input_files(str(shared_data / JEOL))
    # the calibration read from the file, as the page states it
    page.get_by_text("1.25 nm/px").first.wait_for(timeout=60_000)
    charts = page.locator('[data-testid="stPlotlyChart"]')
    charts.first.wait_for()
    assert charts.count() == 2  # micrograph and power spectrum
    # plotly draws go.Image as an SVG <image> holding the PNG; its presence means the pixels reached the browser
    page.wait_for_selector('[data-testid="stPlotlyChart"] .layer-subplot image, '
                           '[data-testid="stPlotlyChart"] svg image', state="attached")
    # scale bar: about a fifth of the 140 nm field of view, rounded down to 1/2/5 x 10^k -> 20 nm
    page.locator('[data-testid="stPlotlyChart"] .annotation-text', has_text="20 nm").first.wait_for()
    assert page.get_by_text("JEOL COM").count() >= 1  # metadata table
    assert page.locator('[data-testid="stException"]').count() == 0
    # the sidebar names the new current image (the page made it current)
    page.locator('[data-testid="stSidebar"]', has_text="JEOL HAADF Image").wait_for()
    # Streamlit scrolls inside its main container, so a tall viewport is what captures the whole page
    page.set_viewport_size({"width": 1400, "height": 2000})
    wait_for_app(page)
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts / "load_jeol_dm4.png"), full_page=True)
