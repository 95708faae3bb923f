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

