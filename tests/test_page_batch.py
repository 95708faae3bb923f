"""Batch page (AppTest) and the batch job kind: a real background job over a folder, its table, plots and zip;
cancel then resume finishes the rest only."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from temzoo import batch as tb
from temzoo.train import jobs
from tests.labelled_sets import stop_jobs
from ui import state

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "batch.py")


def _folder(d: Path, n: int, size: int = 48) -> Path:
    d.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(n):
        Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(d / f"frame_{i}.png")
    (d / "broken.tif").write_bytes(b"II*\x00garbage")
    return d


@pytest.fixture()
def session(tmp_path):
    yield tmp_path / "session"
    stop_jobs(tmp_path / "session" / "batch-jobs")


def _page(session: Path, model: Path) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[state.SESSION_DIR] = str(session)
    at.session_state[state.MODEL_ID] = str(model)
    return at


def test_no_batch_yet(session, tiny_checkpoint):
    at = _page(session, tiny_checkpoint).run()
    assert not at.exception
    assert at.button(key="batch_start").disabled
    assert any("No batch yet" in i.value for i in at.info)


def test_folder_batch_job_table_plots_zip(session, tiny_checkpoint, tmp_path):
    src = _folder(tmp_path / "series", 4)
    at = _page(session, tiny_checkpoint).run()
    at.text_input(key="batch_folder").set_value(str(src)).run()
    assert at.selectbox(key="batch_model").value == str(tiny_checkpoint)
    at.button(key="batch_start").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    [job] = jobs.list_jobs(session / "batch-jobs")
    assert job.kind == "batch" and job.name.startswith("batch-")
    assert jobs.list_jobs(session / "jobs") == []  # not among the training jobs
    st = jobs.wait(job.dir, timeout=180)
    assert st.state == "done", (st.error, jobs.read_log(job.dir))
    assert Path(st.result) == Path(job.dir) / "out"
    assert tb.job_progress(job.dir) == (5, 5)
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert len(table) == 5 and list(table[table.status == "error"].name) == ["broken"]
    assert len(at.get("plotly_chart")) == 2  # the size distribution and the series (frame_0 .. frame_3 in order)
    assert any("4 image(s), 1 failed" in h.value for h in at.subheader)
    zbytes = tb.zip_outputs(Path(st.result))
    names = zipfile.ZipFile(io.BytesIO(zbytes)).namelist()
    assert "out/summary.csv" in names and "out/frame_3/frame_3_mask.png" in names and "out/series.png" in names
    assert not any("/." in n for n in names)  # no bookkeeping files
    series = tb.read_outputs(st.result).series
    assert list(series.name) == ["frame_0", "frame_1", "frame_2", "frame_3"]


def test_cancel_then_resume_finishes_the_rest(session, tiny_checkpoint, tmp_path):
    src = _folder(tmp_path / "many", 30, size=96)
    h = tb.submit_batch([src], tb.BatchConfig(model=str(tiny_checkpoint), threads=1),
                        root=session / "batch-jobs")
    import time

    deadline = time.time() + 120
    while tb.job_progress(h.dir)[0] < 3 and time.time() < deadline:
        time.sleep(0.1)
    jobs.cancel(h.dir)
    st = jobs.wait(h.dir, timeout=120)
    assert st.state == "cancelled", (st.state, jobs.read_log(h.dir))
    out = Path(h.dir) / "out"
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob(f"*/{tb.DONE}")}
    assert 3 <= len(done_before) < 30
    # Resume from the page's button (the job is resumable there)
    at = _page(session, tiny_checkpoint).run()
    at.button(key=f"batch_resume_{st.id}").click().run()
    assert not at.exception
    st = jobs.wait(h.dir, timeout=180)
    assert st.state == "done" and st.attempts == 2, (st.error, jobs.read_log(h.dir))
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob(f"*/{tb.DONE}")}
    assert len(after) == 30 and all(after[k] == v for k, v in done_before.items())  # the done ones were kept
    assert f"({len(done_before)} earlier)" in jobs.read_log(h.dir)
