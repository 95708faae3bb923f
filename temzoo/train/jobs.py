"""Background training jobs: one process per job, a job folder on disk, a queue that runs one job at a time.

A job folder (``<root>/<job_id>/``) holds everything needed to watch, cancel, resume or audit a job::

    config.json     TrainConfig.to_dict()
    status.json     state (queued|running|done|failed|cancelled|interrupted), pid, device, times, error, result
    metrics.jsonl   one line per epoch, written by temzoo.train.loop.train
    last/ best/     resume state and best checkpoint (written atomically by train)
    result/         the zoo-format result; on success it is copied into the local zoo (``status.result``)
    log.txt         the worker's stdout/stderr (tracebacks go here, never to the user)
    cancel          flag file: present -> the job stops at the next training step

Why a fresh interpreter (``sys.executable -m temzoo.train.jobs DIR``, the same thing multiprocessing's spawn start
method does) rather than ``multiprocessing.Process``: a spawned multiprocessing child is joined by the parent at exit
(so stopping the app would block until training ends) and a daemonic one may not start DataLoader workers. A detached
process in its own session survives an app restart, never inherits the server's threads or CUDA state, and frees all
GPU memory when it exits. Everything here is plain Python: usable from a notebook, the CLI or the app.

The queue lives in ``temzoo.paths.jobs_dir()/.queue`` (shared by every session and app instance of one TEMZOO_HOME):
each waiting or running job has an entry there, named by submit time; a worker runs when it is the oldest live entry
and holds the ``run.lock`` flock (the kernel releases it if the worker is killed). Job folders themselves may live
elsewhere (e.g. a per-session folder), so sessions do not see each other's jobs while still sharing one GPU queue.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from temzoo import paths
from temzoo.errors import DataError, JobError, TemzooError
from temzoo.train.oom import is_oom, smaller_batch

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled", "interrupted")
RESUMABLE = ("failed", "cancelled", "interrupted")
DEFAULT_TARGET = "temzoo.train.loop:train"
STATUS_FILE = "status.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "log.txt"
CANCEL_FILE = "cancel"
PID_FILE = "worker.pid"
_POLL_S = 0.3
_STARTING_GRACE_S = 60.0  # a job whose pid is not yet recorded counts as alive this long after submit
_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# "train": a TrainConfig trained by ``target``, the result installed in the local zoo. "batch": temzoo.batch.run_job
# predicts a campaign into an output folder (the result), resumable the same way (it skips finished images).
JOB_KINDS = ("train", "batch")


@dataclass
class JobStatus:
    """What ``status.json`` holds (times are Unix seconds)."""

    id: str
    dir: str
    name: str
    state: str = "queued"
    pid: int | None = None
    pid_start: str | None = None  # /proc start time, so a recycled pid is never mistaken for the job
    device: str | None = None
    submitted: float = 0.0
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    result: str | None = None  # the result folder in the local zoo, once done
    batch_size: int | None = None
    attempts: int = 0  # worker launches (1 + resumes)
    prior_seconds: float = 0.0  # running time of the earlier attempts (a resume adds the last one's)
    target: str = DEFAULT_TARGET
    zoo_dir: str | None = None  # where the result goes (resolved at submit time, so TEMZOO_HOME may change later)
    kind: str = "train"  # one of JOB_KINDS: what the worker runs and where its result goes
    extra: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def resumable(self) -> bool:
        return self.state in RESUMABLE

    @classmethod
    def from_dict(cls, d: dict) -> JobStatus:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class JobHandle:
    """A submitted job: its id and folder, with shortcuts to the module functions."""

    id: str
    dir: Path

    def status(self) -> JobStatus:
        return status(self)

    def metrics(self) -> list[dict]:
        return read_metrics(self)

    def wait(self, timeout: float | None = None) -> JobStatus:
        return wait(self, timeout)

    def cancel(self, wait_s: float = 0.0) -> JobStatus:
        return cancel(self, wait_s)

    def resume(self) -> JobHandle:
        return resume(self)


# ----------------------------------------------------------------------------------------------- files on disk


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise JobError(f"disk full while writing {path}; free some space, then resume the job") from None
        raise JobError(f"cannot write {path}: {err.strerror or err}") from None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def job_dir(job: JobHandle | str | Path, root: str | Path | None = None) -> Path:
    """The folder of ``job``: a handle, a job folder path, or a job id under ``root`` (default ``jobs_dir()``)."""
    if isinstance(job, JobHandle):
        return job.dir
    p = Path(job)
    if (p / STATUS_FILE).is_file():
        return p
    if isinstance(job, str) and _NAME.sub("", job) != job:
        raise JobError(f"{job!r} is not a job id or job folder")
    d = Path(root) if root is not None else paths.jobs_dir()
    if (d / str(job) / STATUS_FILE).is_file():
        return d / str(job)
    raise JobError(f"no job {str(job)!r} in {d}; list jobs with temzoo.train.jobs.list_jobs()")


def _read_status(d: Path) -> JobStatus:
    raw = _read_json(d / STATUS_FILE)
    if raw is None:
        raise JobError(f"job folder {d} has no readable status.json")
    return JobStatus.from_dict(raw)


def _write_status(st: JobStatus) -> None:
    _write_json_atomic(Path(st.dir) / STATUS_FILE, st.to_dict())


def _update_status(d: Path, **changes: Any) -> JobStatus:
    st = _read_status(d)
    for k, v in changes.items():
        setattr(st, k, v)
    _write_status(st)
    return st


# ----------------------------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time) from /proc, or None when the pid does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw.rsplit(")", 1)[1].split()
    return rest[0], rest[19]


def _pid_alive(pid: int | None, start: str | None = None) -> bool:
    if not pid:
        return False
    try:  # reap our own finished children so they do not linger as zombies
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass
    if Path("/proc/self/stat").exists():
        info = _proc_stat(pid)
        if info is None or info[0] in ("Z", "X"):
            return False
        return start is None or info[1] == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _status_alive(st: JobStatus) -> bool:
    """Whether a job that says queued/running really has a live process."""
    if st.pid is None:
        launched = _read_json(Path(st.dir) / PID_FILE)
        if launched and launched.get("pid"):
            return _pid_alive(launched["pid"], launched.get("pid_start"))
        return time.time() - (st.submitted or 0) < _STARTING_GRACE_S
    return _pid_alive(st.pid, st.pid_start)


def _refresh(d: Path) -> JobStatus:
    """Read the status; a job that claims to be active but whose process is gone becomes ``interrupted``."""
    st = _read_status(d)
    if st.active and not _status_alive(st):
        again = _read_status(d)  # the worker may have finished between the two reads
        if again.active and again.pid == st.pid:
            again.state = "interrupted"
            again.error = again.error or f"the job process (pid {st.pid}) ended unexpectedly; resume it to continue"
            again.finished = time.time()
            _write_status(again)
        return again
    return st


def _launch(d: Path) -> None:
    # The worker imports the installed temzoo (requirements.txt installs this checkout editable).
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    with open(d / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "temzoo.train.jobs", str(d)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=str(d), env=env,
            start_new_session=True,  # Ctrl-C or a restart of the app does not kill a running job
        )
    # The worker records its own pid in status.json; writing status here too would race with it, so the launcher
    # leaves the pid in a side file that liveness checks use until the worker's own record appears.
    info = _proc_stat(proc.pid)
    _write_json_atomic(d / PID_FILE, {"pid": proc.pid, "pid_start": info[1] if info else None})


# ----------------------------------------------------------------------------------------------- the queue


def _queue_dir() -> Path:
    q = paths.jobs_dir() / ".queue"
    q.mkdir(parents=True, exist_ok=True)
    return q


def _enqueue(d: Path, job_id: str) -> None:
    _write_json_atomic(_queue_dir() / f"{time.time_ns():020d}-{job_id}.json", {"dir": str(d), "id": job_id})


def _dequeue(job_id: str, queue: Path) -> None:
    for e in queue.glob(f"*-{job_id}.json"):
        e.unlink(missing_ok=True)


def _first_live_entry(queue: Path) -> str | None:
    """Job dir of the oldest live queue entry; stale entries (finished or dead jobs) are removed on the way."""
    for e in sorted(queue.glob("*.json")):
        info = _read_json(e)
        d = Path(info["dir"]) if info and info.get("dir") else None
        try:
            alive = d is not None and _refresh(d).active
        except JobError:
            alive = False
        if alive:
            return str(d)
        e.unlink(missing_ok=True)
    return None


def _wait_for_turn(d: Path, job_id: str, queue: Path, cancelled) -> int | None:
    """Block until this job may run; returns the held lock's fd, or None if the job was cancelled while queued."""
    import fcntl

    lock_path = queue / "run.lock"
    while True:
        if cancelled():
            return None
        if not any(queue.glob(f"*-{job_id}.json")):
            _enqueue(d, job_id)  # our entry was dropped (e.g. taken for stale by a peer during a pause): rejoin
        if _first_live_entry(queue) == str(d):
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        time.sleep(_POLL_S)


# ----------------------------------------------------------------------------------------------- public API


def _config_dict(config: Any) -> dict:
    if isinstance(config, dict):
        return dict(config)
    if hasattr(config, "to_dict"):
        return config.to_dict()
    raise JobError(f"expected a TrainConfig or a dict, got {type(config).__name__}")


def _safe_name(name: str) -> str:
    clean = _NAME.sub("-", name).strip("-.")[:80]
    if not clean:
        raise JobError(f"the name {name!r} has no usable characters; use letters, digits, '-', '_' or '.'")
    return clean


def submit(config: Any, root: str | Path | None = None, name: str | None = None, *,
           target: str = DEFAULT_TARGET, kind: str = "train", zoo_dir: str | Path | None = None) -> JobHandle:
    """Queue a training job and start its worker process; returns at once.

    ``config`` is a :class:`temzoo.train.config.TrainConfig` (or its ``to_dict()``); ``root`` is the folder that holds
    job folders (default ``temzoo.paths.jobs_dir()``); ``name`` names the result in the local zoo (default
    ``<strategy>-<job id>``); ``zoo_dir`` where the result goes (default the local zoo). ``target``
    ("module:function" with train()'s signature) exists for fault-injection tests.
    ``kind="batch"``: ``config`` is temzoo.batch.job_config()'s dict and ``target`` its runner (use
    temzoo.batch.submit_batch).
    """
    cfg = _config_dict(config)
    if kind not in JOB_KINDS:
        raise JobError(f"unknown job kind {kind!r}; one of {', '.join(JOB_KINDS)}")
    images = cfg.get("images")
    if kind == "train" and (not images or not Path(images).exists()):
        raise DataError(f"training images {images!r} not found; pick a labelled set folder that exists")
    if kind == "batch" and not cfg.get("inputs"):
        raise DataError("a batch job needs input files or folders")
    if ":" not in target:
        raise JobError(f"target {target!r} must look like 'module:function'")
    root_dir = Path(root) if root is not None else paths.jobs_dir()
    job_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    d = root_dir / job_id
    try:
        d.mkdir(parents=True)
    except OSError as err:
        raise JobError(f"cannot create the job folder {d}: {err.strerror or err}") from None
    _write_json_atomic(d / CONFIG_FILE, cfg)
    st = JobStatus(
        id=job_id, dir=str(d), name=_safe_name(name or f"{cfg.get('strategy', 'model') if kind == 'train' else kind}-{job_id}"),
        submitted=time.time(), batch_size=cfg.get("batch_size"), attempts=1, target=target,
        zoo_dir=str(zoo_dir or paths.local_zoo_dir()), kind=kind,
    )
    _write_status(st)
    _enqueue(d, job_id)
    _launch(d)
    return JobHandle(job_id, d)


def status(job: JobHandle | str | Path, root: str | Path | None = None) -> JobStatus:
    """The job's status; an active job whose process died is reported (and recorded) as ``interrupted``."""
    return _refresh(job_dir(job, root))


def list_jobs(root: str | Path | None = None) -> list[JobStatus]:
    """All jobs under ``root`` (default ``jobs_dir()``), oldest first. Finds them again after an app restart."""
    d = Path(root) if root is not None else paths.jobs_dir()
    if not d.is_dir():
        return []
    out = []
    for sub in d.iterdir():
        if sub.is_dir() and (sub / STATUS_FILE).is_file():
            try:
                out.append(_refresh(sub))
            except JobError:
                continue  # a folder whose status is unreadable is skipped, not fatal for the listing
    return sorted(out, key=lambda s: s.submitted)


def read_metrics(job: JobHandle | str | Path, root: str | Path | None = None) -> list[dict]:
    """The per-epoch records so far (a line being written right now is skipped)."""
    p = job_dir(job, root) / METRICS_FILE
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def base_kept_note(result: str | Path | None) -> str | None:
    """The trainer's note when no epoch beat the base on validation (the result is then the base unchanged)."""
    if not result:
        return None
    from temzoo.train.config import BASE_KEPT_NOTE
    from temzoo.zoo.checkpoint import read_meta

    try:
        notes = read_meta(result).provenance.get("notes") or []
    except (TemzooError, OSError, ValueError):
        return None
    return next((n for n in notes if isinstance(n, str) and n.startswith(BASE_KEPT_NOTE)), None)


def read_config(job: JobHandle | str | Path, root: str | Path | None = None) -> dict:
    return _read_json(job_dir(job, root) / CONFIG_FILE) or {}


def read_log(job: JobHandle | str | Path, root: str | Path | None = None, tail: int = 4000) -> str:
    try:
        return (job_dir(job, root) / LOG_FILE).read_text(encoding="utf-8", errors="replace")[-tail:]
    except OSError:
        return ""


def cancel(job: JobHandle | str | Path, wait_s: float = 0.0, root: str | Path | None = None) -> JobStatus:
    """Ask the job to stop (it checks a flag file every training step). With ``wait_s`` > 0, wait that long and then
    terminate the process if it is still alive. A queued job leaves the queue without starting."""
    d = job_dir(job, root)
    st = _refresh(d)
    if not st.active:
        if st.state == "interrupted":  # no process to tell: record the user's decision directly
            return _update_status(d, state="cancelled")
        return st
    (d / CANCEL_FILE).touch()
    deadline = time.time() + wait_s
    while time.time() < deadline:
        st = _refresh(d)
        if not st.active:
            return st
        time.sleep(_POLL_S)
    if wait_s > 0 and st.pid and _pid_alive(st.pid, st.pid_start):
        import signal

        os.kill(st.pid, signal.SIGTERM)
        for _ in range(50):
            if not _pid_alive(st.pid, st.pid_start):
                break
            time.sleep(0.1)
        st = _refresh(d)
        if st.state == "interrupted":
            st = _update_status(d, state="cancelled", error="cancelled (the process was stopped)")
    return st


def resume(job: JobHandle | str | Path, root: str | Path | None = None) -> JobHandle:
    """Restart a failed, cancelled or interrupted job from its last checkpoint (``workdir/last``); queues it again."""
    d = job_dir(job, root)
    st = _refresh(d)
    if st.active:
        raise JobError(f"job {st.id} is still {st.state}; cancel it first or wait for it")
    if st.state == "done":
        raise JobError(f"job {st.id} already finished; its result is {st.result}")
    (d / CANCEL_FILE).unlink(missing_ok=True)
    (d / PID_FILE).unlink(missing_ok=True)
    st.prior_seconds = ran_seconds(st) or 0.0
    st.state, st.pid, st.pid_start, st.error, st.finished, st.started = "queued", None, None, None, None, None
    st.submitted, st.attempts = time.time(), st.attempts + 1
    _write_status(st)
    _enqueue(d, st.id)
    _launch(d)
    return JobHandle(st.id, d)


def wait(job: JobHandle | str | Path, timeout: float | None = None, root: str | Path | None = None) -> JobStatus:
    """Block until the job is no longer queued or running; raises :class:`JobError` after ``timeout`` seconds."""
    d = job_dir(job, root)
    deadline = None if timeout is None else time.time() + timeout
    while True:
        st = _refresh(d)
        if not st.active:
            return st
        if deadline is not None and time.time() > deadline:
            raise JobError(f"job {st.id} is still {st.state} after {timeout:g} s")
        time.sleep(_POLL_S)


def ran_seconds(st: JobStatus, now: float | None = None) -> float | None:
    """How long the job has run, every attempt together (a resumed job counts the time before its resume)."""
    if not st.started:
        return st.prior_seconds or None
    end = st.finished or (now or time.time())
    return st.prior_seconds + max(0.0, end - st.started)


def eta_seconds(job: JobHandle | str | Path, root: str | Path | None = None) -> float | None:
    """Rough time left for a running job, from its budget (minutes and/or epochs) and the epochs done so far;
    the time of earlier attempts counts (the trainer's budget does too: it resumes its clock from the checkpoint)."""
    d = job_dir(job, root)
    st = _refresh(d)
    if st.state != "running" or not st.started:
        return None
    cfg = read_config(d)
    ran = ran_seconds(st) or 0.0
    guesses = []
    if cfg.get("minutes"):
        guesses.append(max(0.0, float(cfg["minutes"]) * 60 - ran))
    recs = read_metrics(d)
    if cfg.get("epochs") and recs:
        done = max(int(recs[-1].get("epoch", len(recs))), len(recs))
        per_epoch = ran / max(len(recs), 1)
        guesses.append(max(0.0, (int(cfg["epochs"]) - done) * per_epoch))
    return min(guesses) if guesses else None


# ----------------------------------------------------------------------------------------------- the worker


def _load_target(target: str):
    import importlib

    mod, _, fn = target.partition(":")
    return getattr(importlib.import_module(mod), fn)


def _make_config(cfg: dict):
    from temzoo.train.config import TrainConfig

    return TrainConfig.from_dict(cfg)


def _device_line(pref: str) -> str:
    from temzoo.device import describe_device, pick_device

    dev = pick_device(pref or "auto")
    return describe_device() if dev.type == "cuda" else "cpu"


def _install_result(result: Path, st: JobStatus) -> Path:
    return install_folder(result, Path(st.zoo_dir or paths.local_zoo_dir()), st.name)


def install_folder(result: Path, zoo: Path, name: str) -> Path:
    """Copy a result folder into ``zoo`` under a free name (``name``, ``name-2``, ...; never over anything), copied
    to a temp name, then renamed; its card is titled with that name and loads from that folder."""
    from temzoo.zoo.cards import retitle_card

    name = _safe_name(name)
    zoo.mkdir(parents=True, exist_ok=True)
    dest, n = zoo / name, 2
    while dest.exists():
        dest, n = zoo / f"{name}-{n}", n + 1
    tmp = zoo / f".{dest.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(result, tmp)
    retitle_card(tmp, dest.name, dest)
    os.replace(tmp, dest)
    return dest


def _train_with_oom_retry(d: Path, st: JobStatus, cancelled, log) -> Path:
    cfg = _read_json(d / CONFIG_FILE) or {}
    fn = _load_target(st.target)
    import inspect

    # train() also takes log=: its progress lines then land in log.txt beside the worker's own.
    extra = {"log": log} if "log" in inspect.signature(fn).parameters else {}
    while True:
        # Resume state is workdir/last (or a complete leftover of an interrupted swap; train() finds either).
        resume_flag = (d / "last").exists() or any(d.glob(".last.old-*"))
        try:
            return Path(fn(_make_config(cfg), d, out=d / "result", should_stop=cancelled, resume=resume_flag, **extra))
        except Exception as err:  # noqa: BLE001 - only OOM is handled here, everything else re-raised
            if not is_oom(err):
                raise
            cfg["batch_size"] = smaller_batch(int(cfg.get("batch_size") or 1), st.device, log)
            _write_json_atomic(d / CONFIG_FILE, cfg)
            st = _update_status(d, batch_size=cfg["batch_size"])


def _one_line(err: BaseException) -> str:
    from temzoo.zoo.checkpoint import is_disk_full

    if is_disk_full(err) or (isinstance(err, TemzooError) and "disk full" in str(err)):
        return "disk full while training; free some space, then resume the job"
    if isinstance(err, TemzooError):
        return str(err)
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


def _remove_stale_temporaries(d: Path) -> None:
    """Delete half-written checkpoint folders left by an earlier attempt killed mid-write (readers never open them).
    ``.last.old-*`` is kept: it may be the only complete resume state (temzoo.train.state.find_state). Hidden
    files are left alone: the launcher may be writing its pid file right now."""
    for p in d.iterdir():
        if p.name.startswith(".") and ".old-" not in p.name and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def _run_kind(d: Path, st: JobStatus, cancelled, log) -> Path | None:
    """Run the job's kind; returns where its result now lies, or None when it was cancelled."""
    if st.kind == "batch":  # target: temzoo.batch:run_job (named, not imported: batch submits through this module)
        out = _load_target(st.target)(_read_json(d / CONFIG_FILE) or {}, d, should_stop=cancelled, log=log)
        return None if cancelled() else Path(out)
    result = _train_with_oom_retry(d, st, cancelled, log)
    if cancelled():
        return None
    return _install_result(result, _read_status(d))


def run_worker(d: str | Path) -> int:
    """The job process: wait for the queue, train, install the result, record the outcome in status.json."""
    d = Path(d)
    st = _read_status(d)
    info = _proc_stat(os.getpid())
    st = _update_status(d, pid=os.getpid(), pid_start=info[1] if info else None, state="queued")

    def log(msg: str) -> None:
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    def cancelled() -> bool:
        return (d / CANCEL_FILE).exists()

    queue = _queue_dir()
    log(f"job {st.id} queued (attempt {st.attempts})")
    fd = _wait_for_turn(d, st.id, queue, cancelled)
    if fd is None:
        _dequeue(st.id, queue)
        _update_status(d, state="cancelled", finished=time.time())
        log("cancelled while queued")
        return 0
    try:
        _remove_stale_temporaries(d)
        st = _update_status(d, state="running", started=time.time(), error=None)
        device = _device_line(str((_read_json(d / CONFIG_FILE) or {}).get("device", "auto")))
        st = _update_status(d, device=device)
        log(f"running on {device}")
        dest = _run_kind(d, st, cancelled, log)
        if dest is None:
            _update_status(d, state="cancelled", finished=time.time())
            log("cancelled")
            return 0
        _update_status(d, state="done", finished=time.time(), result=str(dest))
        log(f"done: {dest}")
        return 0
    except BaseException as err:  # noqa: BLE001 - the job's outcome must be recorded whatever happened
        traceback.print_exc()
        state = "cancelled" if cancelled() else "failed"
        try:
            _update_status(d, state=state, finished=time.time(), error=None if state == "cancelled" else _one_line(err))
        except JobError:
            pass
        return 1
    finally:
        _dequeue(st.id, queue)
        os.close(fd)  # releases the flock: the next queued job starts


if __name__ == "__main__":
    sys.exit(run_worker(sys.argv[1]))
