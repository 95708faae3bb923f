"""Classes 3 and 4 of issue #12: corrupt state never takes a page down; job races never lose or duplicate a result.

Class 3: job status files that are a list, null, binary, a bad pid and 14 more variants; a local-zoo folder whose
temzoo.json is ``[]`` (and other junk); a poisoned HF cache entry. Each is listed as damaged with its reason and
skipped, in the library and on the Fine-tune, Batch and Zoo pages (AppTest); the good job and models still list.
Class 4: two resumes of one job at once start one worker (a flock on ``job.lock``); a real worker SIGKILLed while it
installs the result, or after the install and before ``done``, resumes to exactly one correct model in the zoo.

Fails on today's main (``PYTHONPATH=/work/main``): ``test_damaged_status_files_are_listed_not_fatal`` (AttributeError
on a list), ``test_damaged_zoo_folders_are_listed_with_reason`` (AttributeError on ``[]``), and the kill tests (main
has no kill points, and a resume after an install trains again and installs a second copy).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from temzoo.errors import JobError
from temzoo.train import jobs
from temzoo.train.config import TrainConfig
from tests.labelled_sets import make_disk_set, stop_jobs
from ui import state

REPO = Path(__file__).resolve().parent.parent

# name -> raw bytes of status.json (a good record is patched with these values, or replaced outright)
GOOD = {"id": "good", "dir": "", "name": "good", "state": "done", "submitted": 1.0, "attempts": 1,
        "target": jobs.DEFAULT_TARGET, "kind": "train", "extra": {}}


def status_variants() -> dict[str, bytes]:
    def patched(**kw) -> bytes:
        return json.dumps({**GOOD, **kw}).encode()

    deep = "[" * 100_000 + "]" * 100_000
    return {
        "list": b"[]", "null": b"null", "binary": bytes(range(256)) * 4, "empty": b"", "truncated": b'{"id": "x", "st',
        "string": b'"running"', "number": b"42", "deep": deep.encode(), "huge": b" " * 2_000_000 + b"{}",
        "bad-pid-string": patched(state="running", pid="abc"), "bad-pid-negative": patched(state="running", pid=-1),
        "bad-pid-huge": patched(state="running", pid=2 ** 64), "bad-pid-float": patched(state="running", pid=1.5),
        "bad-pid-list": patched(state="running", pid=[1]), "no-state": json.dumps({"id": "x", "name": "x"}).encode(),
        "bad-state": patched(state="exploded"), "nan-time": json.dumps({**GOOD, "submitted": float("nan")}).encode(),
        "string-time": patched(submitted="yesterday"), "extra-list": patched(extra=[1, 2]),
        "bad-kind": patched(kind="rm -rf"), "negative-attempts": patched(attempts=-5),
        "zero-batch": patched(batch_size=0), "bool-pid": patched(state="running", pid=True),
        "pid-start-number": patched(state="running", pid=1, pid_start=5),
    }


def make_jobs(root: Path) -> dict[str, Path]:
    """One good finished job and one folder per damaged variant (plus one whose status.json is a folder)."""
    root.mkdir(parents=True, exist_ok=True)
    good = root / "good"
    good.mkdir()
    (good / "status.json").write_text(json.dumps({**GOOD, "dir": str(good)}))
    (good / "config.json").write_text(json.dumps({"strategy": "scratch", "base": "scratch"}))
    out = {"good": good}
    for name, raw in status_variants().items():
        d = root / f"bad-{name}"
        d.mkdir()
        (d / "status.json").write_bytes(raw)
        out[name] = d
    (root / "bad-dir").mkdir()
    (root / "bad-dir" / "status.json").mkdir()
    out["dir"] = root / "bad-dir"
    return out


def test_damaged_status_files_are_listed_not_fatal(tmp_path):
    made = make_jobs(tmp_path / "jobs")
    listed = {Path(s.dir).name: s for s in jobs.list_jobs(tmp_path / "jobs")}
    assert listed["good"].state == "done"
    bad = {k: s for k, s in listed.items() if k != "good"}
    assert len(bad) == len(made) - 1
    for name, s in bad.items():
        assert s.state == jobs.DAMAGED and s.error and "\n" not in s.error, (name, s)
        assert not s.active and not s.resumable
        assert jobs.describe(s.dir).state == jobs.DAMAGED
        with pytest.raises(JobError):
            jobs.resume(s.dir)
    assert "pid 'abc'" in listed["bad-bad-pid-string"].error or "pid" in listed["bad-bad-pid-string"].error


def _zoo_junk(zoo: Path, ckpt: Path) -> list[str]:
    zoo.mkdir(parents=True, exist_ok=True)
    junk = {"list": "[]", "string": '"x"', "px-text": '{"pixel_size_nm": "abc"}', "px-nan": '{"pixel_size_nm": NaN}',
            "px-negative": '{"pixel_size_nm": -1}', "classes": '{"class_names": 5}', "binary": "\x00\xff\x00"}
    for name, text in junk.items():
        shutil.copytree(ckpt, zoo / f"junk-{name}")
        (zoo / f"junk-{name}" / "temzoo.json").write_text(text)
    shutil.copytree(ckpt, zoo / "junk-fifo")
    (zoo / "junk-fifo" / "temzoo.json").unlink()
    os.mkfifo(zoo / "junk-fifo" / "temzoo.json")  # reading it would block forever
    shutil.copytree(ckpt, zoo / ".mine.temzoo-tmp-999999-ab")  # a killed install's temporary: never a model
    shutil.copytree(ckpt, zoo / ".mine.123.partial")
    shutil.copytree(ckpt, zoo / "fine")
    return [f"junk-{n}" for n in junk] + ["junk-fifo"]


def _poison_hf_cache(cache: Path, ckpt: Path) -> None:
    repo = cache / "models--org--poisoned"
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    for f in ("config.json", "model.safetensors"):
        shutil.copyfile(ckpt / f, snap / f)
    (snap / "temzoo.json").write_text("[]")


def test_damaged_zoo_folders_are_listed_with_reason(tmp_path, tiny_checkpoint, monkeypatch):
    from temzoo.paths import local_zoo_dir
    from temzoo.zoo.sources import list_models

    bad = _zoo_junk(local_zoo_dir(), tiny_checkpoint)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    _poison_hf_cache(tmp_path / "hf", tiny_checkpoint)
    t0 = time.time()
    every = {m.id: m for m in list_models(hub=False, include_damaged=True)}
    assert time.time() - t0 < 30  # the FIFO was never opened
    for name in bad + ["org/poisoned"]:
        assert every[name].damaged and "\n" not in every[name].damaged, name
    usable = [m.id for m in list_models(hub=False)]
    assert "fine" in usable and not set(bad) & set(usable) and not any(u.startswith(".") for u in usable)
    assert not any(m.id.startswith(".") for m in every.values())


def test_pages_show_damaged_items_and_keep_working(tmp_path, tiny_checkpoint, monkeypatch):
    """Fine-tune, Batch and Zoo pages with 26 damaged job folders, 8 damaged zoo folders and a poisoned cache."""
    from temzoo.paths import local_zoo_dir

    session = tmp_path / "session"
    make_jobs(session / "jobs")
    make_disk_set(session / "labels", n=2, size=64)
    _zoo_junk(local_zoo_dir(), tiny_checkpoint)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    _poison_hf_cache(tmp_path / "hf", tiny_checkpoint)
    import streamlit as st

    st.cache_data.clear()  # the pages cache the zoo listing for 30 s: an earlier page test's listing must not answer
    for page in ("finetune", "batch", "zoo"):
        at = AppTest.from_file(str(REPO / "pages" / f"{page}.py"), default_timeout=120)
        at.session_state[state.SESSION_DIR] = str(session)
        at.run()
        assert not at.exception, (page, at.exception)
        warnings = " ".join(str(w.value) for w in at.warning)
        if page == "finetune":
            assert "job folder(s) damaged and skipped" in warnings and "model folder(s) damaged" in warnings
            assert at.selectbox(key="ft_job").options == ["good"] or len(at.selectbox(key="ft_job").options) == 1
        if page == "zoo":
            assert "junk-list" in warnings and "org/poisoned" in warnings
            assert any("fine" in str(m.value) for m in at.markdown)


# ------------------------------------------------------------------------------------------------ class 4: races
@pytest.fixture()
def disk_set(tmp_path):
    yield make_disk_set(tmp_path / "set", n=4, size=64)
    stop_jobs()
    stop_jobs(tmp_path / "jobs")


def _cfg(folder: Path) -> TrainConfig:
    return TrainConfig(images=str(folder / "images"), masks=str(folder / "masks"), base="scratch",
                       strategy="scratch", epochs=1, batch_size=2, tile_size=64, device="cpu", patience=100,
                       steps_per_epoch=2)


def _zoo_entries() -> list[str]:
    from temzoo.paths import local_zoo_dir

    return sorted(p.name for p in local_zoo_dir().iterdir()) if local_zoo_dir().is_dir() else []


@pytest.mark.parametrize("point", ["install-copied", "installed"])
def test_sigkill_during_or_after_install_resumes_to_one_correct_model(disk_set, tmp_path, monkeypatch, point):
    """The real worker SIGKILLs itself at ``point`` (TEMZOO_KILL_AT); the resume installs exactly one model, trains
    no second time after the install, and leaves no temporary in the zoo."""
    from temzoo.zoo.checkpoint import load_checkpoint

    monkeypatch.setenv("TEMZOO_KILL_AT", point)
    h = jobs.submit(_cfg(disk_set), root=tmp_path / "jobs", name="raced")
    monkeypatch.delenv("TEMZOO_KILL_AT")
    st = jobs.wait(h, timeout=240)
    assert st.state == "interrupted", (st, jobs.read_log(h))
    assert st.extra.get("trained") is True and st.extra.get("install_to")
    epochs_before = len(jobs.read_metrics(h))
    jobs.resume(h)
    st = jobs.wait(h, timeout=240)
    assert st.state == "done", (st.error, jobs.read_log(h))
    assert _zoo_entries() == ["raced"] and st.result.endswith("/raced")
    load_checkpoint(st.result)
    assert len(jobs.read_metrics(h)) == epochs_before  # the resume did not train again
    log = jobs.read_log(h, tail=100_000)
    assert ("already installed" in log) == (point == "installed")


def test_two_resumes_at_once_start_one_worker(disk_set, tmp_path, monkeypatch):
    """Two processes resume the same interrupted job at the same moment: one is refused by the job lock, one worker
    runs, one model is installed, no orphan process is left."""
    monkeypatch.setenv("TEMZOO_KILL_AT", "installed")
    h = jobs.submit(_cfg(disk_set), root=tmp_path / "jobs", name="twice")
    monkeypatch.delenv("TEMZOO_KILL_AT")
    assert jobs.wait(h, timeout=240).state == "interrupted"
    code = ("import sys, time; from temzoo.train import jobs; from temzoo.errors import JobError\n"
            "t = float(sys.argv[2]); time.sleep(max(0, t - time.time()))\n"
            "try:\n    jobs.resume(sys.argv[1]); print('resumed')\n"
            "except JobError as e:\n    print('refused', e)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    at = str(time.time() + 3)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(h.dir), at], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert [o.split()[0] for o in outs] == ["refused", "resumed"], outs
    st = jobs.wait(h, timeout=240)
    assert st.state == "done" and _zoo_entries() == ["twice"], (outs, st)
    deadline = time.time() + 60  # the worker exits after writing "done" (interpreter shutdown takes a moment)
    while time.time() < deadline:
        workers = subprocess.run(["pgrep", "-f", f"temzoo.train.jobs {h.dir}"], capture_output=True,
                                 text=True).stdout.split()
        if not workers:
            break
        time.sleep(0.5)
    assert not workers, f"orphan worker(s) {workers}"
    log = jobs.read_log(h, tail=1_000_000)
    assert log.count("already installed") == 1 and "another worker runs it" not in log
    assert st.attempts <= 3


def test_job_lock_refuses_a_second_resume_while_held(disk_set, tmp_path):
    """The lock itself: while one process holds ``job.lock`` (a resumer or the worker), resume is refused."""
    import fcntl

    d = tmp_path / "jobs" / "j"
    d.mkdir(parents=True)
    (d / "status.json").write_text(json.dumps({**GOOD, "id": "j", "name": "j", "state": "interrupted",
                                                "dir": str(d)}))
    fd = os.open(d / jobs.JOB_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(JobError, match="already being resumed or run"):
            jobs.resume(d)
    finally:
        os.close(fd)
