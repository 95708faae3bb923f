"""Load page through Streamlit's AppTest: demo files, calibration shown, charts drawn, state shared, errors shown."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from ui import state

PAGE = str(REPO / "pages/load.py")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def _pick_demo(at: AppTest, name: str) -> AppTest:
    at.radio[0].set_value("Demo file").run()
    box = at.selectbox[0]
    option = next(o for o in box.options if o.startswith(name))
    box.set_value(option).run()
    assert not at.exception, at.exception
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_starts_empty_with_a_hint():
    at = _page()
    assert any("Upload a file or pick a demo" in i.value for i in at.info)
    assert not at.error


def test_demo_multi_signal(shared_data):
    at = _pick_demo(_page(), "multi_signal.dm3")
    assert _metric(at, "Pixel size") == "0.01775 nm/px"
    assert _metric(at, "Size") == "512 x 512 px"
    assert len(at.get("plotly_chart")) == 2  # the micrograph and its power spectrum
    assert any("'Plot'" in c.value for c in at.caption)  # the 1D plot beside the image is listed as skipped
    mg = at.session_state[state.MICROGRAPH]
    assert mg.title == "HAADF" and mg.pixel_size_nm == pytest.approx(0.017751578, rel=1e-6)
    table = at.table[0].value
    assert table.loc["voltage_kv", "value"] == "300" and table.loc["microscope", "value"] == "Example Microscope"


def test_demo_jeol_then_contrast(shared_data):
    at = _pick_demo(_page(), "JEOL HAADF Image.dm4")
    assert _metric(at, "Pixel size") == "1.25 nm/px"
    assert _metric(at, "Field of view") == "140 nm"
    before = at.session_state[state.MICROGRAPH]
    at.slider[0].set_value((5.0, 95.0)).run()
    assert not at.exception
    assert at.session_state[state.MICROGRAPH] is before  # contrast is display-only; the micrograph is unchanged
    assert len(at.get("plotly_chart")) == 2


def test_stack_frame_picker(shared_data):
    at = _pick_demo(_page(), "temp.mrc")
    assert _metric(at, "Size") == "128 x 128 px x 3"
    frame = next(s for s in at.slider if s.label == "Frame")
    frame.set_value(2).run()
    assert at.session_state[state.FRAME] == 2
    assert at.session_state[state.MICROGRAPH].n_frames == 3


def test_uncalibrated_warns(shared_data):
    at = _pick_demo(_page(), "DMReader_Image_SI-Survey.dm3")
    assert _metric(at, "Pixel size") == "uncalibrated"
    assert any("no pixel size" in w.value for w in at.warning)


def test_no_shared_data_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMZOO_SHARED_DATA", str(tmp_path / "absent"))
    at = _page()
    at.radio[0].set_value("Demo file").run()
    assert any("No demo files here" in i.value for i in at.info)
    assert not at.exception


def test_upload_path_reads_bytes_and_reports_errors(shared_data):
    # AppTest cannot drive the file uploader; the page hands uploads to this function (the browser test uploads)
    from ui.load import read_upload

    data = (shared_data / "dm/particlespy/JEOL HAADF Image.dm4").read_bytes()
    result, error = read_upload(data, "JEOL HAADF Image.dm4")
    assert error is None and result.micrographs[0].pixel_size_nm == pytest.approx(1.2490136, rel=1e-6)
    result, error = read_upload(data[:5000], "cut.dm4")
    assert result is None and error.startswith("cut.dm4 could not be read") and "\n" not in error



def _px_field(at: AppTest):
    return next(n for n in at.number_input if n.label.startswith("Pixel size"))


def test_pixel_size_for_an_uncalibrated_png(shared_data):
    """#14.1: the pixel-size field makes an uncalibrated image calibrated for every page (and the sidebar)."""
    at = _pick_demo(_page(), "1.png")
    assert _metric(at, "Pixel size") == "uncalibrated"
    _px_field(at).set_value(0.39).run()
    assert not at.exception and not at.error
    mg = at.session_state[state.MICROGRAPH]
    assert mg.pixel_size_nm == 0.39 and mg.metadata["pixel_size_source"] == "given"
    assert _metric(at, "Pixel size") == "0.39 nm/px" and _metric(at, "Field of view") == "200 nm"
    assert not any("no pixel size" in w.value for w in at.warning)
    _px_field(at).set_value(0.0).run()  # back to unknown
    assert at.session_state[state.MICROGRAPH].pixel_size_nm is None


def test_pixel_size_override_and_refusal(shared_data):
    at = _pick_demo(_page(), "JEOL HAADF Image.dm4")
    next(t for t in at.toggle if t.label.startswith("Override")).set_value(True).run()
    _px_field(at).set_value(2.5).run()
    assert at.session_state[state.MICROGRAPH].pixel_size_nm == 2.5
    assert any("file says 1.25 nm/px" in c.value for c in at.caption)
    _px_field(at).set_value(1e-7).run()  # below any microscope: one line, the last good value stays
    assert any("outside" in e.value for e in at.error)
    assert at.session_state[state.MICROGRAPH].pixel_size_nm == 2.5


def test_reload_keeps_image_pixel_size_and_model(shared_data):
    """#14.5: a reload (a new session with ?session=<id>) finds the current image, its given pixel size and model."""
    from tests.util import APP

    at = _pick_demo(_page(), "1.png")
    _px_field(at).set_value(0.39).run()
    from ui import session

    sid = at.session_state[state.SESSION_DIR]
    # the Segment/Zoo pages remember a model through session.use_model; write it as they do
    import json
    from pathlib import Path

    doc = json.loads((Path(sid) / session.CURRENT_FILE).read_text())
    doc["model"] = "steel-dislocation-loops"
    (Path(sid) / session.CURRENT_FILE).write_text(json.dumps(doc))
    again = AppTest.from_file(APP, default_timeout=60)
    again.query_params["session"] = Path(sid).name
    again.run()
    assert not again.exception, again.exception
    mg = again.session_state[state.MICROGRAPH]
    assert mg is not None and mg.pixel_size_nm == 0.39 and mg.shape == (512, 512)
    assert again.session_state[state.MODEL_ID] == "steel-dislocation-loops"
    assert any("0.39 nm/px" in m.value for m in again.sidebar.markdown)
