"""Compare page (AppTest): two strategies on the same pinned validation image, real jobs, table and curves."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from temzoo.train import comparison, jobs
from tests.labelled_sets import make_disk_set, stop_jobs
from ui import state

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "compare.py")


@pytest.fixture()
def session(tmp_path):
    """A session folder; any job a failed test left running is stopped afterwards."""
    yield tmp_path / "session"
    stop_jobs(tmp_path / "session" / "jobs")


def test_compare_two_strategies(session):
    make_disk_set(session / "labels", n=3, size=64, pixel_size_nm=None)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[state.SESSION_DIR] = str(session)
    at.run()
    assert not at.exception, at.exception
    assert any("No comparisons yet" in i.value for i in at.info)
    at.selectbox(key="cmp_base").set_value("scratch")
    at.multiselect(key="cmp_strategies").set_value(["scratch", "full"])
    at.multiselect(key="cmp_sizes").set_value([2, 8])  # 8 > the 2 training images: dropped, not an error
    at.radio(key="cmp_budget_kind").set_value("epochs").run()
    at.number_input(key="cmp_epochs").set_value(1)
    at.number_input(key="cmp_batch").set_value(2)
    at.select_slider(key="cmp_tile").set_value(64)
    at.selectbox(key="cmp_device").set_value("cpu")
    at.button(key="cmp_start").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])

    [record] = comparison.list_comparisons(session)
    assert [(r["strategy"], r["n_images"]) for r in record["runs"]] == [("scratch", 2), ("full", 2)]
    assert record["val_names"] == ["disk2"]
    for run in record["runs"]:
        assert jobs.read_config(run["job"])["val_names"] == ["disk2"]  # same validation image for every run
    table = at.dataframe[0].value
    assert list(table["strategy"]) == ["scratch", "full"] and set(table["state"]) <= {"queued", "running"}

    for run in record["runs"]:
        st = jobs.wait(run["job"], timeout=180)
        assert st.state == "done", (st.error, jobs.read_log(run["job"]))
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["state"]) == ["done", "done"]
    assert table["best val F1"].between(0, 1).all() and (table["seconds"] > 0).all()
    assert len(at.get("plotly_chart")) == 1  # curves of both runs against time
