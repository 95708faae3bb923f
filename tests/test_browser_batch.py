"""Batch page in Chromium against a real ``streamlit run app.py``: upload 5 files, see the table, download the zip."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from tests.util import nav, wait_for_app


def test_upload_five_files_see_table_download_zip(app_server, browser, artifacts, tmp_path):
    rng = np.random.default_rng(5)
    files = []
    for i in range(5):
        p = tmp_path / f"tile_{i}.png"
        Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(p)
        files.append(str(p))
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(app_server)
        wait_for_app(page)
        nav(page, "Batch")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(files)
        page.get_by_text("tile_4.png").first.wait_for()
        wait_for_app(page)
        page.get_by_role("button", name="Run batch").click()
        page.get_by_text("Summary: 5 image(s), 0 failed").first.wait_for(timeout=240_000)
        page.locator('[data-testid="stDataFrame"]').first.wait_for()
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        page.screenshot(path=str(artifacts / "batch_done.png"), full_page=True)
        with page.expect_download(timeout=60_000) as dl:
            page.get_by_role("button", name="Download everything (zip)").click()
        names = zipfile.ZipFile(io.BytesIO(Path(dl.value.path()).read_bytes())).namelist()
    finally:
        ctx.close()
    assert "out/summary.csv" in names and "out/particles.csv" in names
    for i in range(5):
        assert f"out/tile_{i}/tile_{i}_mask.png" in names and f"out/tile_{i}/tile_{i}.hspy" in names
