"""Label page (AppTest): draw-path save with a threshold start, uploads of mask / COCO / YOLO labels, the set view."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from temzoo.train import labelset
from temzoo.types import Micrograph
from tests.labelled_sets import disk_image
from ui import state

REPO = Path(__file__).resolve().parent.parent


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _app(mg: Micrograph | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / "label.py"), default_timeout=60)
    if mg is not None:
        at.session_state[state.MICROGRAPH] = mg
    return at.run()


def test_no_micrograph_explains_what_to_do():
    at = _app()
    assert not at.exception
    assert any("Load a micrograph" in i.value for i in at.info)


def test_threshold_start_then_save_writes_a_full_size_pair():
    img, truth = disk_image(96, seed=3)
    at = _app(Micrograph(data=img, pixel_size_nm=0.5, source="disks.dm4", title="disks"))
    assert not at.exception
    at.selectbox(key="label_start").set_value("Threshold: bright features").run()
    at.text_input(key="label_name").set_value("../../evil name").run()
    at.button(key="label_save").click().run()
    assert not at.exception, at.exception
    labels = Path(at.session_state[state.SESSION_DIR]) / "labels"
    pairs = labelset.list_pairs(labels)
    assert [p.name for p in pairs] == ["evil-name"]  # sanitised: never a path outside the set
    saved = np.asarray(Image.open(pairs[0].mask))
    assert saved.shape == (96, 96) and set(np.unique(saved)) <= {0, 255}
    iou = ((saved > 0) & truth).sum() / ((saved > 0) | truth).sum()
    assert iou > 0.9  # Otsu on clean disks recovers them
    assert pairs[0].pixel_size_nm == 0.5
    assert any("1** labelled images" in m.value for m in at.markdown)


def test_uploads_mask_coco_and_yolo(tmp_path):
    at = _app()
    a, ma = disk_image(64, seed=1)
    b, mb = disk_image(64, seed=2)
    c, _ = disk_image(64, seed=4)
    u8 = lambda x: (x * 200).clip(0, 255).astype(np.uint8)  # noqa: E731
    coco = {"images": [{"id": 1, "file_name": "b.png", "height": 64, "width": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                             "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]}],
            "categories": [{"id": 1, "name": "loop"}]}
    at.file_uploader(key="label_up_images").set_value(
        [("a.png", _png(u8(a)), "image/png"), ("b.png", _png(u8(b)), "image/png"), ("c.png", _png(u8(c)), "image/png"),
         ("d.png", _png(u8(c)), "image/png")])
    at.file_uploader(key="label_up_labels").set_value(
        [("a.png", _png((ma * 255).astype(np.uint8)), "image/png"),
         ("coco.json", json.dumps(coco).encode(), "application/json"),
         ("c.txt", b"0 0.1 0.1 0.5 0.1 0.5 0.5\n", "text/plain")])
    at.run()
    at.button(key="label_up_add").click().run()
    assert not at.exception, at.exception
    labels = Path(at.session_state[state.SESSION_DIR]) / "labels"
    got = {p.name: np.asarray(Image.open(p.mask)) > 0 for p in labelset.list_pairs(labels)}
    assert sorted(got) == ["a", "b", "c"]
    assert (got["a"] == ma).all()
    assert got["b"][20, 20] and not got["b"][40, 40]  # the COCO square
    assert got["c"][15, 20] and not got["c"][40, 10]  # the YOLO triangle (upper right half of 6..32 px)
    assert any("d.png" in e.value for e in at.error)  # an image without labels is reported, not crashed on


def test_strokes_scale_back_and_eraser_wins_where_drawn_last():
    # 2x downscaled canvas: red stroke on the left half, a blue (eraser) stroke over its top rows.
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, :16] = (255, 0, 0, 115)
    rgba[:8, :16] = (90, 40, 160, 178)  # blue composited over red
    base = np.zeros((64, 64), bool)
    base[60:, 60:] = True
    m = labelset.strokes_to_mask(rgba, (64, 64), base)
    assert m[20:, :32].all() and not m[:16, :].any() and not m[20:60, 32:].any()
    assert m[60:, 60:].all()  # untouched pixels keep the starting mask


def test_hostile_coco_upload_is_an_error_line_and_the_page_runs():
    """Issue #12 class 7: on the main of 2026-12-04 the nesting bomb escaped as RecursionError (the page went
    down) and the string image id as ValueError. Now each is one error naming the file; the good mask still imports."""
    at = _app()
    a, ma = disk_image(48, seed=1)
    u8 = (a * 200).clip(0, 255).astype(np.uint8)
    bomb = b"[" * 200_000 + b"]" * 200_000
    ids = json.dumps({"images": [{"id": "x", "file_name": "b.png", "height": 48, "width": 48}],
                      "annotations": [{"id": 1, "image_id": 1, "segmentation": [[1, 1, 9, 1, 9, 9]]}]}).encode()
    at.file_uploader(key="label_up_images").set_value([("a.png", _png(u8), "image/png"),
                                                       ("b.png", _png(u8), "image/png")])
    at.file_uploader(key="label_up_labels").set_value(
        [("a.png", _png((ma * 255).astype(np.uint8)), "image/png"), ("bomb.json", bomb, "application/json"),
         ("ids.json", ids, "application/json")])
    at.run()
    at.button(key="label_up_add").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("bomb.json" in e and "nested too deeply" in e for e in errors), errors
    assert any("ids.json" in e and "unknown image_id 1" in e for e in errors), errors
    assert all("\n" not in e and "unexpected" not in e for e in errors)
    labels = Path(at.session_state[state.SESSION_DIR]) / "labels"
    assert [p.name for p in labelset.list_pairs(labels)] == ["a"]


def test_start_from_the_models_prediction_at_a_threshold_then_zoom_keeps_the_work(tiny_checkpoint):
    """#14.7: the mask starts from the current model's prediction above the chosen threshold; zooming and panning
    show part of the frame, and what earlier views hold (strokes, the start) is kept in the saved mask."""
    from temzoo.predict import PredictOptions, predict
    from temzoo.zoo import load_model

    img, _ = disk_image(96, seed=5)
    mg = Micrograph(data=img, pixel_size_nm=0.05, source="disks.dm4", title="disks")
    at = AppTest.from_file(str(REPO / "pages" / "label.py"), default_timeout=120)
    at.session_state[state.MICROGRAPH] = mg
    at.session_state[state.MODEL_ID] = str(tiny_checkpoint)
    at.run()
    assert "Current model's prediction" in at.selectbox(key="label_start").options
    at.selectbox(key="label_start").set_value("Current model's prediction").run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    prob = predict(load_model(str(tiny_checkpoint)), mg, PredictOptions()).probability
    thr = float(np.quantile(prob, 0.7))  # about 30 % of the pixels above it, whatever the random weights say
    thr = min(max(round(thr / 0.05) * 0.05, 0.05), 0.95)
    at.slider(key="label_pred_threshold").set_value(thr).run()
    want = labelset.prediction_mask(prob, thr, (96, 96))
    assert want.any() and not want.all()
    assert any(f"{want.mean() * 100:.1f} % of 96x96 pixels labelled" in c.value for c in at.caption)

    # zoom in on the lower right quarter: the caption says which part is shown; then strokes "drawn" there (the
    # canvas's last composite, as a run leaves it) survive a pan to another view
    at.select_slider(key="label_zoom").set_value(4).run()
    at.slider(key="label_pan_x").set_value(1.0).run()
    at.slider(key="label_pan_y").set_value(1.0).run()
    assert any("Showing x 72-96, y 72-96 of 96x96 px at 4x" in c.value for c in at.caption)
    drawn = np.asarray(at.session_state["label_last"]).copy()
    drawn[80:90, 80:90] = True
    drawn[0:4, 0:4] = False
    at.session_state["label_last"] = drawn
    at.slider(key="label_pan_x").set_value(0.0).run()
    at.text_input(key="label_name").set_value("from-prediction").run()
    at.button(key="label_save").click().run()
    assert not at.exception, at.exception
    [pair] = labelset.list_pairs(Path(at.session_state[state.SESSION_DIR]) / "labels")
    saved = np.asarray(Image.open(pair.mask)) > 0
    assert (saved == drawn).all() and (saved[4:, 4:] == want[4:, 4:])[:76, :76].all()


def test_view_box_keeps_the_aspect_and_stays_inside():
    from ui.label import view_box

    assert view_box((100, 200), 1, 0.5, 0.5) == (0, 100, 0, 200)
    assert view_box((100, 200), 4, 0.0, 1.0) == (75, 100, 0, 50)  # left edge, bottom edge
    assert view_box((100, 200), 2, 0.5, 0.5) == (25, 75, 50, 150)
