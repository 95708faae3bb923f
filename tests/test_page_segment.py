"""Segment page under Streamlit's AppTest: real model (tiny checkpoint), real prediction, maps and numbers render."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from temzoo.types import Micrograph
from ui import state

PAGE = Path(__file__).resolve().parent.parent / "pages" / "segment.py"


def _blobs(h: int = 96, w: int = 128) -> np.ndarray:
    yy, xx = np.indices((h, w))
    img = np.random.default_rng(0).normal(0, 0.2, (h, w)).astype(np.float32)
    for cy, cx in ((30, 30), (60, 90), (70, 30)):
        img += ((yy - cy) ** 2 + (xx - cx) ** 2 < 100).astype(np.float32)
    return img


def _png(a: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _app(mg, model) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.session_state[state.MICROGRAPH] = mg
    at.session_state[state.FRAME] = 0
    if model is not None:
        at.session_state[state.MODEL_ID] = str(model)
    return at


def _charts(at):
    return [e for e in at.get("plotly_chart")]


def test_no_micrograph_says_what_to_do():
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception
    assert any("load one on the Load page" in i.value for i in at.info)


def test_segment_page_renders_maps_metrics_and_caches(tiny_checkpoint):
    mg = Micrograph(_blobs(), 0.05, source="blobs.png", title="blobs")
    before = mg.data.copy()
    at = _app(mg, tiny_checkpoint)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    labels = {m.label for m in at.metric}
    assert {"Objects", "Convex objects", "Foreground", "Mean confidence", "Uncertain pixels"} <= labels
    charts = _charts(at)
    assert len(charts) >= 3  # linked maps + two histograms
    import json

    maps = json.loads(charts[0].proto.spec)
    assert len(maps["data"]) == 4 and all(t["type"] == "image" for t in maps["data"])
    assert maps["layout"]["xaxis2"]["matches"] == "x"  # linked zoom: the panels share axes
    assert len(at.dataframe) == 1
    # The downloads are the export bundle, named after the image (the same files CLI predict writes).
    from temzoo.export import build_bundle

    labels = [b.label for b in at.get("download_button")]
    assert labels[:3] == ["blobs_mask.png", "blobs_mask.tif", "blobs_probability.tif"]
    pred = next(v for k, v in at.session_state["tz_segment_cache"].items() if k[0] == "predict")
    assert labels == list(build_bundle(pred, mg).files)
    assert {"blobs.hspy", "blobs_overlay.png", "blobs_summary.json", "blobs_particles.csv"} <= set(labels)
    cache = at.session_state["tz_segment_cache"]
    n_pred = sum(1 for k in cache if k[0] == "predict")
    assert n_pred == 1
    np.testing.assert_array_equal(mg.data, before)  # the caller's array is untouched

    # Toggling a view does not recompute; toggling TTA does (one more prediction, with its spread map).
    at.radio(key="seg_conf_view").set_value("entropy").run()
    assert not at.exception
    assert sum(1 for k in at.session_state["tz_segment_cache"] if k[0] == "predict") == 1
    at.toggle(key="seg_tta").set_value(True).run()
    assert not at.exception
    assert sum(1 for k in at.session_state["tz_segment_cache"] if k[0] == "predict") == 2
    assert "tta_spread" in at.radio(key="seg_conf_view").options

    # Attribution for a box region: the importance panel gets a signed map.
    at.checkbox(key="seg_use_fg").set_value(False)
    at.selectbox(key="seg_method").set_value("gradcam")
    at.button(key="seg_explain").click().run()
    assert not at.exception, at.exception
    maps = json.loads(_charts(at)[0].proto.spec)
    assert "importance" in maps["layout"]["meta"]["panels"][3] and "pick a method" not in \
        maps["layout"]["meta"]["panels"][3]
    assert any(k[0] == "explain" for k in at.session_state["tz_segment_cache"])

    # An uploaded mask gives supervised metrics and a reliability diagram.
    truth = (_blobs() > 0.5).astype(np.uint8) * 255
    at.file_uploader(key="seg_mask_upload").set_value(("truth.png", _png(truth), "image/png")).run()
    assert not at.exception, at.exception
    labels = {m.label for m in at.metric}
    assert {"f1", "iou", "object_f1", "ece", "Fitted temperature"} <= labels


def test_wrong_mask_size_and_bad_model_show_errors(tiny_checkpoint, tmp_path):
    mg = Micrograph(_blobs(), None, source="blobs.png")
    at = _app(mg, tiny_checkpoint)
    at.run()
    at.file_uploader(key="seg_mask_upload").set_value(("small.png", _png(np.zeros((10, 10), np.uint8)),
                                                        "image/png")).run()
    assert not at.exception
    assert any("differs from the prediction" in e.value for e in at.error)
    assert any("uncalibrated" in w.value for w in at.warning)

    at = _app(mg, tmp_path / "missing")
    at.run()
    assert not at.exception
    assert at.error and "missing" in at.error[0].value


@pytest.mark.parametrize("frames", [3])
def test_stack_frame_slider(tiny_checkpoint, frames):
    data = np.stack([_blobs() * (i + 1) for i in range(frames)])
    at = _app(Micrograph(data, 0.05), tiny_checkpoint)
    at.run()
    assert not at.exception
    at.slider[0].set_value(2).run()
    assert not at.exception
    assert at.session_state[state.FRAME] == 2


def test_uo2_network_shows_grains_and_no_object_f1(shared_data):
    """#14.3: the UO2 boundary model reports grains, never objects; the domain-shift score is in the caption."""
    from temzoo.io import read_micrograph
    from temzoo.paths import bundled_zoo_dir

    src = shared_data / "labeled/uo2-grain-boundaries"
    mg = read_micrograph(src / "images/4.jpg")
    at = _app(mg, bundled_zoo_dir() / "uo2-grain-boundaries")
    at.run()
    assert not at.exception, at.exception
    labels = {m.label for m in at.metric}
    assert {"Grains", "Convex grains", "Grains inside the field"} <= labels and "Objects" not in labels
    assert any("Domain-shift score" in c.value for c in at.caption)
    # (metrics against a human mask by kind: tests/test_trust.py::test_network_metrics_count_grains_not_objects)


def test_edge_toggle_changes_the_size_statistics(tiny_checkpoint):
    mg = Micrograph(_blobs(), 0.05, source="blobs.png", title="blobs")
    at = _app(mg, tiny_checkpoint)
    at.run()
    toggle = next(t for t in at.toggle if t.label.startswith("Count sizes"))
    assert toggle.value is False
    assert "Cut by the edge" in {m.label for m in at.metric}
    toggle.set_value(True).run()
    assert not at.exception, at.exception
