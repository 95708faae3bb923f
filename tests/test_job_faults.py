"""Jobs survive faults: SIGKILL at random moments (also in the middle of a checkpoint write), a full disk, out of
memory, and a "server restart" (a fresh process) that must find queued, running and finished jobs again.

After every kill, every file in the job folder must parse or load (JSON, JSON lines, safetensors, checkpoint
folders): writes are atomic (temporary sibling + rename), so nothing is ever half-written where a reader looks.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from temzoo.train import jobs
from temzoo.train.config import TrainConfig
from tests.labelled_sets import make_disk_set, stop_jobs
from tests.test_fuzz_readers import _record

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def disk_set(tmp_path):
    yield make_disk_set(tmp_path / "set", n=4, size=64)
    stop_jobs()
    stop_jobs(tmp_path / "jobs")


def _cfg(folder: Path, **kw) -> TrainConfig:
    base = dict(images=str(folder / "images"), masks=str(folder / "masks"), base="scratch", strategy="scratch",
                epochs=2, batch_size=2, tile_size=64, device="cpu", patience=100, steps_per_epoch=3)
    base.update(kw)
    return TrainConfig(**base)


def _wait_for(cond, timeout: float, what: str, every: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}")


def _complete_epochs(d: Path) -> int:
    try:
        lines = (d / "metrics.jsonl").read_text().split("\n")
    except OSError:
        return 0
    return len([ln for ln in lines[:-1] if ln.strip()])  # a line counts once its newline is written


def check_job_folder(d: Path) -> dict:
    """Every file a reader may open parses/loads. Hidden temporaries (``.name.tmp-*``, ``.last.old-*``) are
    ignored by readers by construction; they are counted, not opened. Returns counts for the report."""
    from safetensors.torch import load_file

    from temzoo.train.state import find_state, load_state
    from temzoo.zoo.checkpoint import load_checkpoint

    counts = {"json": 0, "jsonl_lines": 0, "safetensors": 0, "checkpoints": 0, "hidden_temporaries": 0}
    for p in sorted(d.rglob("*")):
        rel = p.relative_to(d)
        if any(part.startswith(".") for part in rel.parts):
            if len(rel.parts) == 1:
                counts["hidden_temporaries"] += 1
            continue
        if p.is_dir() or p.name in ("log.txt", "cancel", "README.md"):
            continue
        if p.suffix == ".json":
            json.loads(p.read_text())
            counts["json"] += 1
        elif p.suffix == ".jsonl":
            text = p.read_text()
            body = text if text.endswith("\n") else text[: text.rfind("\n") + 1]  # a line still being appended
            for line in body.splitlines():
                json.loads(line)
                counts["jsonl_lines"] += 1
        elif p.suffix == ".safetensors":
            load_file(str(p))
            counts["safetensors"] += 1
    for sub in ("best", "result"):
        if (d / sub).is_dir():
            load_checkpoint(d / sub)
            counts["checkpoints"] += 1
    found = find_state(d)
    if found is not None:
        import torch

        from temzoo.zoo.checkpoint import ModelSpec

        model = ModelSpec().build()
        load_state(found, model, torch.optim.AdamW(model.parameters()))
        counts["checkpoints"] += 1
    return counts


def _resumed_at(h) -> list[int]:
    import re

    return [int(m) for m in re.findall(r"resumed from \S+ at epoch (\d+)", jobs.read_log(h, tail=1_000_000))]


def test_sigkill_at_random_moments_and_mid_write(disk_set):
    """Kill 1 at a random moment inside an epoch; kill 2 while a checkpoint folder is being written; kill 3 at
    another random moment. After each: every file loads, resume loses at most the epoch in progress; finally every
    epoch appears exactly once in the history and the result loads."""
    rng = np.random.default_rng(2024)
    # Epochs long enough (8 steps) and enough of them that a resumed job cannot finish between two polls; a job
    # that finishes anyway ends the kills (the checks below still need two, one during a write).
    epochs = 10
    h = jobs.submit(_cfg(disk_set, epochs=epochs, steps_per_epoch=8))
    kills = []
    for k in range(3):
        start = _complete_epochs(h.dir)
        _wait_for(lambda: not h.status().active or (h.status().state == "running"
                                                    and _complete_epochs(h.dir) >= start + 1), 240,
                  f"an epoch before kill {k + 1}")
        pid = h.status().pid
        if k == 1:
            # the moment a checkpoint folder (best/ or last/) is being written: its temporary sibling exists
            def writing() -> bool:
                return any(p.name.startswith((".last.tmp-", ".best.")) for p in h.dir.iterdir())
            caught = False
            deadline = time.time() + 60
            while time.time() < deadline and h.status().active:
                if writing():
                    caught = True
                    break
                time.sleep(0.002)
            how = "during a checkpoint write" if caught else "random (no write caught)"
        else:
            time.sleep(float(rng.uniform(0.0, 1.0)))
            how = "random moment"
        if not h.status().active:
            break  # finished before the kill: nothing to kill
        done_before = _complete_epochs(h.dir)
        os.kill(pid, signal.SIGKILL)
        st = _wait_for(lambda: h.status() if h.status().state == "interrupted" else None, 30, "interrupted state")
        assert "ended unexpectedly" in st.error and st.resumable
        counts = check_job_folder(h.dir)
        kills.append({"kill": k + 1, "how": how, "epochs_done_at_kill": done_before, **counts})
        h.resume()
        _wait_for(lambda: len(_resumed_at(h)) == k + 1, 120, "the resume line")
        resumed = _resumed_at(h)[-1]
        assert resumed >= done_before - 1, (resumed, done_before)  # at most the epoch in progress is lost
        kills[-1]["resumed_at_epoch"] = resumed
    st = h.wait(timeout=300)
    assert st.state == "done", (st.error, jobs.read_log(h))
    assert [r["epoch"] for r in h.metrics()] == list(range(1, epochs + 1))  # none lost, none repeated
    check_job_folder(h.dir)
    from temzoo.zoo import load_model

    load_model(st.result)
    leftovers = [p.name for p in h.dir.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers
    assert len(kills) >= 2 and any(k["how"] == "during a checkpoint write" for k in kills), kills
    _record("job_sigkill", epochs=epochs, kills=kills, final_state=st.state, attempts=st.attempts)


# --------------------------------------------------------------------------------------------------- disk full


def enospc_after_first_epoch(config, workdir, log=None, **kw):
    """Job target for machines where tmpfs cannot be mounted: the OS-call boundary (``os.replace``, the rename that
    publishes every checkpoint) fails with ENOSPC from the second epoch on, unless the "free space" flag exists."""
    from temzoo.train import loop

    real = os.replace

    def replace(src, dst, *a, **k):
        wd = Path(workdir)
        if not (wd / "space-freed").exists() and (wd / "metrics.jsonl").exists() and \
                Path(str(dst)).name in ("last", "best"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real(src, dst, *a, **k)

    os.replace = replace
    try:
        return loop.train(config, workdir, log=log, **kw)
    finally:
        os.replace = real


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_disk_full_gives_a_clear_message_and_resume_works(disk_set, tmp_path):
    """A real full disk where possible (tmpfs + a filler file leaving ~1 MB; one checkpoint needs 3.5 MB): the job
    fails with 'disk full' / 'No space left', nothing half-written is left where readers look; after freeing space,
    resume finishes. The CLI's finetune --out on the full disk is one error line too."""
    mnt = tmp_path / "small-disk"
    real_disk = _mount_tmpfs(mnt, "24m")
    try:
        root = mnt / "jobs"
        if real_disk:
            filler = mnt / "filler"
            with open(filler, "wb") as f:
                f.write(b"\0" * (23 * 2**20))
            h = jobs.submit(_cfg(disk_set, epochs=2), root=root)
        else:
            filler = None
            h = jobs.submit(_cfg(disk_set, epochs=2), root=root,
                            target="tests.test_job_faults:enospc_after_first_epoch")
        st = h.wait(timeout=180)
        assert st.state == "failed", (st.state, jobs.read_log(h))
        assert st.error == "disk full while training; free some space, then resume the job", st.error
        assert st.resumable
        counts = check_job_folder(h.dir)
        message = st.error

        if real_disk:
            # the CLI on the same full disk: one error line, exit 2, no partial output folder
            env = dict(os.environ, PYTHONPATH=str(REPO))
            r = subprocess.run(
                [sys.executable, "-m", "temzoo", "finetune", "--images", str(disk_set / "images"), "--masks",
                 str(disk_set / "masks"), "--base", "scratch", "--strategy", "scratch", "--out", str(mnt / "cli-out"),
                 "--epochs", "1", "--tile-size", "32", "--pixel-size-nm", "0.5", "--device", "cpu", "--quiet"],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
            err_lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
            assert r.returncode == 2 and err_lines[-1].startswith("error: "), r.stderr[-2000:]
            assert "disk full" in err_lines[-1] or "No space left" in err_lines[-1], err_lines[-1]
            assert "unexpected failure" not in err_lines[-1], err_lines[-1]  # the environment, not a bug
            assert "Traceback" not in r.stderr and not (mnt / "cli-out").exists()
            filler.unlink()  # free the space
        else:
            (h.dir / "space-freed").touch()
        h.resume()
        st = h.wait(timeout=240)
        assert st.state == "done", (st.error, jobs.read_log(h))
        assert [r["epoch"] for r in h.metrics()] == [1, 2]
        check_job_folder(h.dir)
    finally:
        stop_jobs(mnt / "jobs")
        if real_disk:
            _umount(mnt)
    _record("job_disk_full", method="tmpfs 24 MB + filler" if real_disk else "ENOSPC injected at os.replace",
            message=message, files_checked=counts, resumed_to="done")


# ------------------------------------------------------------------------------------------------ out of memory


def memory_error_always(config, workdir, **kw):
    raise MemoryError("Unable to allocate 8.00 GiB for an array with shape (2, 1, 32768, 32768)")


def test_out_of_memory_on_cpu_is_a_clear_message(disk_set):
    """CPU out-of-memory (MemoryError) at batch 1: the job fails with one line saying what to do."""
    h = jobs.submit(_cfg(disk_set, batch_size=1, epochs=1), target="tests.test_job_faults:memory_error_always")
    st = h.wait(timeout=120)
    assert st.state == "failed" and st.error.startswith("out of memory even at batch size 1"), st.error
    assert "smaller tile size" in st.error and "\n" not in st.error
    _record("job_oom", message=st.error)


# ------------------------------------------------------------------------------------------- server restart


def test_restart_finds_queued_running_and_finished_jobs(disk_set, tmp_path):
    """Jobs are plain folders + detached processes: a fresh interpreter (the app after a restart) lists a finished,
    a running and a queued job with their true states, and the Fine-tune page of that session shows them."""
    from streamlit.testing.v1 import AppTest

    from tests.util import page_file
    from ui import state

    session = tmp_path / "session"
    root = session / "jobs"
    done = jobs.submit(_cfg(disk_set, epochs=1), root=root, name="finished-one")
    assert done.wait(timeout=180).state == "done"
    running = jobs.submit(_cfg(disk_set, epochs=50), root=root, name="long-one")
    _wait_for(lambda: running.status().state == "running", 120, "the long job to run")
    queued = jobs.submit(_cfg(disk_set, epochs=1), root=root, name="waiting-one")
    _wait_for(lambda: queued.status().pid, 60, "the queued worker to start")
    try:
        out = subprocess.run(
            [sys.executable, "-c", "import json, sys; from temzoo.train import jobs; "
             "print(json.dumps({s.name: s.state for s in jobs.list_jobs(sys.argv[1])}))", str(root)],
            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=60,
            check=True)
        seen = json.loads(out.stdout)
        assert seen == {"finished-one": "done", "long-one": "running", "waiting-one": "queued"}, seen
        at = AppTest.from_file(page_file("finetune"), default_timeout=60)
        at.session_state[state.SESSION_DIR] = str(session)
        at.run()
        assert not at.exception, at.exception
        job_box = next(s for s in at.selectbox if s.label == "Job")
        assert len(job_box.options) == 3
        text = " ".join(str(o) for o in job_box.options)
        assert all(n in text for n in ("finished-one", "long-one", "waiting-one")), text
    finally:
        queued.cancel(wait_s=20)
        running.cancel(wait_s=30)
    assert queued.status().state == "cancelled" and queued.status().started is None
    _record("job_restart", listed=seen, page_jobs=3)
