"""Damaged files through the app: the Load, Segment and Label pages (AppTest driving the real file uploaders) and a
running ``streamlit run`` server (headless Chromium uploads). Each bad file gives one ``st.error`` line and the page
keeps working; the server stays up and healthy for the next session.
"""

from __future__ import annotations

import io
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from temzoo.types import Micrograph
from tests.test_fuzz_readers import _all_variants, _one_line, _record
from tests.util import page_file, wait_for_app
from ui import state

JEOL = "dm/particlespy/JEOL HAADF Image.dm4"


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _sample(shared: Path, n: int, seed: int) -> list[tuple[str, str, bytes, str]]:
    cases = _all_variants(shared)
    return [cases[i] for i in np.random.default_rng(seed).choice(len(cases), n, replace=False)]


def test_load_page_survives_damaged_uploads(shared_data):
    """A sample of damaged files uploaded to the Load page: one st.error line or an image, never an exception; a
    good file still loads afterwards."""
    at = AppTest.from_file(page_file("load"), default_timeout=60)
    at.run()
    errors = images = 0
    picks = _sample(shared_data, 16, seed=3)
    for rel, kind, data, suffix in picks:
        at.file_uploader[0].set_value((Path(rel).stem + suffix, data, "application/octet-stream")).run()
        assert not at.exception, (rel, kind, at.exception)
        if at.error:
            assert len(at.error) == 1 and _one_line(at.error[0].value), (rel, kind, at.error[0].value)
            errors += 1
        else:
            assert at.session_state[state.MICROGRAPH] is not None, (rel, kind)
            images += 1
    assert errors >= 8  # most damage is caught
    good = (shared_data / JEOL).read_bytes()
    at.file_uploader[0].set_value(("JEOL HAADF Image.dm4", good, "application/octet-stream")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state[state.MICROGRAPH].pixel_size_nm == pytest.approx(1.2490136, rel=1e-6)
    _record("app_load_page", uploads=len(picks) + 1, errors_shown=errors, images=images + 1, exceptions=0)


def test_segment_page_rejects_bad_masks_cleanly(tiny_checkpoint):
    """Masks of the wrong size, with grey levels, or not an image at all: one st.error, the maps still render."""
    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (64, 80)).astype(np.float32)
    at = AppTest.from_file(page_file("segment"), default_timeout=120)
    at.session_state[state.MICROGRAPH] = Micrograph(img, 0.05, source="noise.png", title="noise")
    at.session_state[state.MODEL_ID] = str(tiny_checkpoint)
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    up = at.file_uploader(key="seg_mask_upload")
    bad = {
        "small.png": _png(np.zeros((32, 40), np.uint8)),  # half the image's size
        "grey.png": _png((np.arange(64 * 80) % 200).reshape(64, 80).astype(np.uint8)),  # grey levels, not labels
        "junk.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "empty.tif": b"",
    }
    shown = 0
    for name, data in bad.items():
        at.file_uploader(key="seg_mask_upload").set_value((name, data, "image/png")).run()
        assert not at.exception, (name, at.exception)
        msgs = [e.value for e in at.error]
        assert len(msgs) == 1 and _one_line(msgs[0]), (name, msgs)
        shown += 1
        assert at.get("plotly_chart"), name  # the prediction view is still there
    assert up is not None
    good = (rng.random((64, 80)) > 0.5).astype(np.uint8) * 255
    at.file_uploader(key="seg_mask_upload").set_value(("good.png", _png(good), "image/png")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert {"f1", "iou", "ece"} <= {m.label for m in at.metric}
    _record("app_segment_masks", bad_masks=len(bad), errors_shown=shown, good_mask_scored=True)


def test_label_page_reports_bad_pairs_and_keeps_good_ones():
    """Label uploads: a mismatched mask and a broken COCO file are reported in one line each; the good pair lands."""
    rng = np.random.default_rng(1)
    at = AppTest.from_file(page_file("label"), default_timeout=60).run()
    img = (rng.random((64, 64)) * 255).astype(np.uint8)
    images = [("good.png", _png(img), "image/png"), ("wrong.png", _png(img), "image/png"),
              ("coco_img.png", _png(img), "image/png"), ("broken.dm4", b"\x00\x00\x00\x04garbage", "x")]
    coco = {"images": [{"id": 1, "file_name": "coco_img.png", "width": 64, "height": 64}],
            "categories": [{"id": 1, "name": "loop"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 5]]}]}
    labels = [("good.png", _png((img > 128).astype(np.uint8) * 255), "image/png"),
              ("wrong.png", _png(np.zeros((30, 64), np.uint8)), "image/png"),
              ("labels.json", json.dumps(coco).encode(), "application/json"),
              ("broken.png", _png(np.zeros((64, 64), np.uint8)), "image/png")]
    at.file_uploader(key="label_up_images").set_value(images)
    at.file_uploader(key="label_up_labels").set_value(labels)
    at.run()
    at.button(key="label_up_add").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert all(_one_line(e) for e in errors), errors
    assert any("polygon" in e for e in errors) and any("does not match" in e or "size" in e for e in errors), errors
    assert any("broken" in e for e in errors), errors
    assert any("Added 1 labelled images: good" in s.value for s in at.success), [s.value for s in at.success]
    _record("app_label_uploads", uploads=len(images) + len(labels), errors_shown=len(errors), pairs_added=1)


@pytest.mark.browser
def test_running_server_survives_damaged_uploads(app_server, page, shared_data, artifacts):
    """Real uploads to a real server: each damaged file shows an error (or an image) in the page; afterwards the
    server answers its health check and a fresh browser session loads a good DM4."""
    picks = [c for c in _sample(shared_data, 40, seed=11) if c[3] in (".dm3", ".dm4", ".emd", ".ser")][:5]
    page.goto(app_server)
    wait_for_app(page)
    tmp = artifacts / "fuzz-uploads"
    tmp.mkdir(exist_ok=True)
    outcomes = []
    for k, (rel, kind, data, suffix) in enumerate(picks):
        f = tmp / f"damaged{k}{suffix}"
        f.write_bytes(data)
        page.locator('input[type="file"]').set_input_files(str(f))
        page.wait_for_timeout(300)
        wait_for_app(page)
        alert = page.locator('[data-testid="stAlertContentError"]')
        chart = page.locator('[data-testid="stPlotlyChart"]')
        # this upload's own outcome: an error line naming it, or (readable after all) the image with no error
        page.wait_for_function(
            """name => {
                const errs = [...document.querySelectorAll('[data-testid="stAlertContentError"]')];
                if (errs.some(e => e.innerText.includes(name))) return true;
                return errs.length === 0 && document.querySelector('[data-testid="stPlotlyChart"]') !== null;
            }""", arg=f"damaged{k}", timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0, (rel, kind)
        outcomes.append("error" if alert.count() else "image" if chart.count() else "?")
        f.unlink()
    page.screenshot(path=str(artifacts / "fuzz_last_damaged_upload.png"), full_page=True)
    with urllib.request.urlopen(f"{app_server}/_stcore/health", timeout=10) as r:
        assert r.status == 200
    ctx = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    fresh = ctx.new_page()
    try:
        fresh.set_default_timeout(60_000)
        fresh.goto(app_server)
        wait_for_app(fresh)
        fresh.locator('input[type="file"]').set_input_files(str(shared_data / JEOL))
        fresh.get_by_text("1.25 nm/px").first.wait_for(timeout=60_000)
    finally:
        ctx.close()
    _record("browser_damaged_uploads", uploads=len(picks), outcomes=outcomes, server_healthy_after=True)
