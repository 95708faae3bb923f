"""Compare page (AppTest): two strategies on the same pinned validation image, real jobs, table and curves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from temzoo.train import comparison, jobs
from temzoo.zoo.meta import read_meta
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
    at.selectbox(key="cmp_device").set_value("cpu").run()
    # Every run validates on the same pinned images, so the Fine-tune page's validation choice is not offered here.
    assert not [s for s in at.selectbox if s.key == "cmp_validation"]
    # the plan before starting: how many runs and what they take together (#14.4)
    assert any("2 runs, one after another, 1 epochs each" in c.value for c in at.caption)
    at.radio(key="cmp_budget_kind").set_value("minutes").run()
    at.number_input(key="cmp_minutes").set_value(1.5).run()
    assert any("2 runs, one after another: about 3 min 00 s in all (1.5 min each)" in c.value for c in at.caption)
    at.radio(key="cmp_budget_kind").set_value("epochs").run()
    at.number_input(key="cmp_epochs").set_value(1)
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

    # the runs' models stay in the comparison's folder; the user's zoo gets only the winner, when asked (#14.4)
    zoo = Path(os.environ["TEMZOO_HOME"]) / "zoo"
    assert not zoo.exists() or not any(zoo.iterdir())
    assert all(Path(r["result"]).is_relative_to(session / "comparisons" / record["id"])
               for r in comparison.table(record))
    at.text_input(key=f"cmp_winner_name_{record['id']}").set_value("best-of-two")
    at.button(key=f"cmp_save_{record['id']}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "best-of-two" in at.success[0].value
    assert [p.name for p in zoo.iterdir()] == ["best-of-two"]
    card = (zoo / "best-of-two" / "README.md").read_text()
    assert "# best-of-two" in card and 'load_model("best-of-two")' in card and str(zoo / "best-of-two") in card
    winner = max(comparison.table(record), key=lambda r: r["best_val_f1"])
    assert read_meta(zoo / "best-of-two").provenance["strategy"] == winner["strategy"]
    at.button(key=f"cmp_save_{record['id']}").click().run()  # again: a second copy under a free name, nothing lost
    assert sorted(p.name for p in zoo.iterdir()) == ["best-of-two", "best-of-two-2"]


def test_strategies_that_need_a_pretrained_base_are_refused_from_scratch(session):
    """#14.4: freeze-encoder / l2sp from scratch: one line, nothing queued (the registry decides, as in the CLI)."""
    make_disk_set(session / "labels", n=3, size=64, pixel_size_nm=None)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[state.SESSION_DIR] = str(session)
    at.run()
    at.selectbox(key="cmp_base").set_value("scratch")
    at.multiselect(key="cmp_strategies").set_value(["full", "l2sp"])
    at.button(key="cmp_start").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "strategy 'l2sp' needs a pretrained base, not scratch: pick a zoo model as the base, or use scratch, full"]
    assert comparison.list_comparisons(session) == [] and not (session / "jobs").exists()


def test_a_run_that_kept_its_base_reports_the_bases_f1(tmp_path):
    """#14.4: no epoch beat the base -> the result is the base, and the row shows the base's validation F1 (the
    trainer scored it on the same images), not the epochs' 0."""
    import json

    from temzoo.train.config import BASE_KEPT_NOTE

    job, result = tmp_path / "job", tmp_path / "result"
    job.mkdir()
    result.mkdir()
    (result / "temzoo.json").write_text(json.dumps({"provenance": {
        "metrics": {"f1": 0.812, "iou": 0.683}, "notes": [f"{BASE_KEPT_NOTE} on validation (val F1 0.812): ..."]}}))
    (job / "status.json").write_text(json.dumps({"id": "j", "dir": str(job), "name": "j", "state": "done",
                                                 "started": 100.0, "finished": 130.0, "prior_seconds": 12.0,
                                                 "result": str(result)}))
    (job / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_f1": 0.0, "val_iou": 0.0, "seconds": 9}) + "\n")
    row = comparison.summarize_job(job)
    assert row["base_kept"] and row["best_val_f1"] == 0.812 and row["best_val_iou"] == 0.683
    assert row["seconds"] == 42.0  # 30 s of this attempt + 12 s before a resume
