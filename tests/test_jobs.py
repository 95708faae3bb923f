"""Background jobs with real (tiny) training: queue, cancel, SIGKILL + resume, OOM retry, finding jobs after restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from temzoo import paths
from temzoo.errors import DataError, JobError
from temzoo.train import jobs
from temzoo.train.config import TrainConfig
from tests.labelled_sets import make_disk_set, stop_jobs

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def disk_set(tmp_path):
    yield make_disk_set(tmp_path / "set", n=4, size=64)
    stop_jobs()  # only matters when a test failed half-way


def _cfg(folder: Path, **kw) -> TrainConfig:
    base = dict(images=str(folder / "images"), masks=str(folder / "masks"), base="scratch", strategy="scratch",
                epochs=2, batch_size=2, tile_size=64, device="cpu", patience=100,
                steps_per_epoch=2)
    base.update(kw)
    return TrainConfig(**base)


def _wait_for(cond, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_submit_trains_for_real_and_installs_result_in_local_zoo(disk_set):
    from temzoo.zoo import load_model

    h = jobs.submit(_cfg(disk_set), name="disks v1")
    st = h.wait(timeout=180)
    assert st.state == "done", (st.error, jobs.read_log(h))
    assert st.device == "cpu" and st.started and st.finished >= st.started
    assert Path(st.result) == paths.local_zoo_dir() / "disks-v1"  # name sanitised into the user's zoo
    ckpt = load_model(st.result)
    assert ckpt.meta.pixel_size_nm == pytest.approx(0.5)
    card = (Path(st.result) / "README.md").read_text()  # titled and loaded by the name it got, not "result" (#14.5)
    assert "# disks-v1\n" in card and 'load_model("disks-v1")' in card and f'from_pretrained("{st.result}")' in card
    assert "- name: disks-v1" in card and "# result" not in card and "zoo/result" not in card  # model-index name
    # from scratch it cites only U-Net: no pretraining paper of a lineage it does not have
    cites = card.split("## Citation")[1]
    assert "U-Net" in cites and "Rangel DaCosta" not in cites and "Kazimi" not in cites
    recs = h.metrics()
    assert [r["epoch"] for r in recs] == [1, 2] and all("val_f1" in r for r in recs)
    assert json.loads((h.dir / "config.json").read_text())["tile_size"] == 64
    _wait_for(lambda: not jobs._pid_alive(st.pid, st.pid_start), 30, "the worker process to exit")

    # A "restart": a fresh interpreter with the same TEMZOO_HOME finds the job and its result again.
    out = subprocess.run(
        [sys.executable, "-c", "import json; from temzoo.train import jobs; "
         "print(json.dumps([[s.id, s.state, s.result] for s in jobs.list_jobs()]))"],
        cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=60, check=True,
    )
    assert json.loads(out.stdout) == [[h.id, "done", st.result]]


def test_queue_runs_one_job_at_a_time_and_cancel_stops_running_and_queued_jobs(disk_set):
    a = jobs.submit(_cfg(disk_set, epochs=50))
    b = jobs.submit(_cfg(disk_set, epochs=1))
    c = jobs.submit(_cfg(disk_set, epochs=1))
    _wait_for(lambda: a.metrics(), 120, "the first job's first epoch")
    assert (b.status().state, c.status().state) == ("queued", "queued")  # one at a time
    assert c.cancel(wait_s=30).state == "cancelled"  # leaves the queue without ever starting
    sa = a.cancel(wait_s=60)  # running: stops at the next step through the flag file
    assert sa.state == "cancelled" and sa.result is None and len(a.metrics()) < 50
    sb = b.wait(180)
    assert sb.state == "done", (sb.error, jobs.read_log(b))
    assert sa.finished <= sb.started  # b started only after a let go of the device
    sc = c.status()
    assert sc.started is None and not c.metrics()
    assert not list((paths.jobs_dir() / ".queue").glob("*.json"))  # queue drained


def test_sigkill_mid_run_then_resume_continues_from_last_epoch(disk_set):
    from temzoo.train.state import find_state

    h = jobs.submit(_cfg(disk_set, epochs=8))
    def saved_epoch() -> int:
        found = find_state(h.dir)
        try:
            return json.loads((found / "state.json").read_text())["info"]["epoch"] if found else 0
        except (OSError, ValueError):
            return 0  # caught between the two renames of an atomic swap

    _wait_for(lambda: saved_epoch() >= 2, 180, "two saved epochs")
    pid = h.status().pid
    os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: h.status().state == "interrupted", 20, "the dead job to be noticed")
    st = h.status()
    assert "ended unexpectedly" in st.error and st.resumable
    state_dir = find_state(h.dir)
    assert state_dir is not None  # the last complete checkpoint survived the kill
    done_epoch = json.loads((state_dir / "state.json").read_text())["info"]["epoch"]
    assert done_epoch >= 2

    before = jobs.ran_seconds(st)  # the first attempt's running time (until the kill was noticed)
    assert before and before > 0
    h.resume()
    st = h.wait(timeout=240)
    assert st.state == "done", (st.error, jobs.read_log(h))
    assert st.attempts == 2
    # "ran for" counts both attempts (#14.5)
    assert st.prior_seconds == pytest.approx(before)
    assert jobs.ran_seconds(st) == pytest.approx(before + st.finished - st.started)
    assert f"at epoch {done_epoch}" in jobs.read_log(h, tail=100_000)  # picked up after the last saved epoch
    assert [r["epoch"] for r in h.metrics()] == list(range(1, 9))  # each epoch once: none lost, none repeated
    assert not list(h.dir.glob(".*tmp*"))  # no half-written checkpoint left behind


def test_out_of_memory_retries_with_a_smaller_batch(disk_set):
    h = jobs.submit(_cfg(disk_set, batch_size=4, epochs=1), target="tests.job_targets:oom_above_batch_1")
    st = h.wait(timeout=180)
    assert st.state == "done", (st.error, jobs.read_log(h))
    assert st.batch_size == 1 and json.loads((h.dir / "config.json").read_text())["batch_size"] == 1
    assert "retrying with 2" in jobs.read_log(h) and "retrying with 1" in jobs.read_log(h)

    h2 = jobs.submit(_cfg(disk_set, batch_size=1, epochs=1), target="tests.job_targets:always_oom")
    st2 = h2.wait(timeout=120)
    assert st2.state == "failed" and st2.error.startswith("out of memory even at batch size 1")


def test_bad_requests_are_one_line_errors(disk_set, tmp_path):
    with pytest.raises(DataError, match="not found"):
        jobs.submit(_cfg(tmp_path / "nowhere"))
    with pytest.raises(JobError, match="no job"):
        jobs.status("20990101-000000-abcdef")
    with pytest.raises(JobError, match="not a job id"):
        jobs.status("../../etc")
    assert jobs.list_jobs(tmp_path / "empty") == []
