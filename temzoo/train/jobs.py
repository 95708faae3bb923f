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
DAMAGED = "damaged"  # list_jobs' state for a folder whose status.json cannot be trusted (the reason is in error)
_MAX_STATUS_BYTES = 1_000_000
_PID_MAX = 1 << 22  # Linux's largest pid_max
RESUMABLE = ("failed", "cancelled", "interrupted")
DEFAULT_TARGET = "temzoo.train.loop:train"
STATUS_FILE = "status.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "log.txt"
CANCEL_FILE = "cancel"
PID_FILE = "worker.pid"
JOB_LOCK = "job.lock"  # flock held by whoever resumes the job, then by its worker for its whole life
_LOCK_WAIT_S = 30.0  # how long a new worker waits for the resumer to hand the job lock over
_RESUME_WAIT_S = 5.0  # how long resume waits for the previous holder (an exiting worker, another resumer)
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
        from temzoo.io.writers import _jsonable  # NaN/inf (a diverged loss) as null: never a non-finite number

        tmp.write_text(json.dumps(_jsonable(obj), indent=1, default=str, allow_nan=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise JobError(f"disk full while writing {path}; free some space, then resume the job") from None
        raise JobError(f"cannot write {path}: {err.strerror or err}") from None


def _read_json(path: Path) -> dict | None:
    """A JSON object from a small regular file; None when missing, unreadable, too large or not an object."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_STATUS_BYTES:
            return None
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


# status.json field -> (allowed types, may be None); numbers must also be finite
_STATUS_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), False), "name": ((str,), False), "state": ((str,), False), "pid": ((int,), True),
    "pid_start": ((str,), True), "device": ((str,), True), "submitted": ((int, float), False),
    "started": ((int, float), True), "finished": ((int, float), True), "error": ((str,), True),
    "result": ((str,), True), "batch_size": ((int,), True), "attempts": ((int,), False), "target": ((str,), False),
    "zoo_dir": ((str,), True), "kind": ((str,), False), "extra": ((dict,), False),
}


def _status_problem(raw: dict) -> str | None:
    """Why a status.json object cannot be trusted (wrong type, missing key, non-finite or absurd number), or None."""
    import math

    for key, (types, nullable) in _STATUS_TYPES.items():
        if key not in raw:
            if key in ("id", "name", "state"):
                return f"has no {key!r}"
            continue
        v = raw[key]
        if v is None and nullable:
            continue
        if isinstance(v, bool) or not isinstance(v, types):
            return f"{key!r} is {type(v).__name__}, not {' or '.join(t.__name__ for t in types)}"
        if isinstance(v, float) and not math.isfinite(v):
            return f"{key!r} is {v}"
    if raw["state"] not in ACTIVE + FINISHED:
        return f"state {str(raw['state'])[:40]!r} is not one of {', '.join(ACTIVE + FINISHED)}"
    if raw.get("kind", "train") not in JOB_KINDS:
        return f"kind {str(raw['kind'])[:40]!r} is not one of {', '.join(JOB_KINDS)}"
    pid = raw.get("pid")
    if pid is not None and not 0 < pid <= _PID_MAX:
        return f"pid {pid} is not a process id"
    if raw.get("batch_size") is not None and not 0 < raw["batch_size"] <= 1 << 20:
        return f"batch size {raw['batch_size']} is out of range"
    if not 0 <= raw.get("attempts", 0) <= 1 << 20:
        return f"attempts {raw['attempts']} is out of range"
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
    """The job's status; :class:`JobError` (one line, the reason) when status.json is missing or damaged."""
    raw = _read_json(d / STATUS_FILE)
    if raw is None:
        raise JobError(f"job folder {d.name}: status.json is missing, unreadable or not a JSON object")
    problem = _status_problem(raw)
    if problem:
        raise JobError(f"job folder {d.name}: status.json {problem}")
    st = JobStatus.from_dict(raw)
    st.dir = str(d)  # the folder it was read from, whatever the file says
    return st


def damaged_status(d: Path, reason: str) -> JobStatus:
    """How a job folder with a damaged status.json is listed: state ``damaged``, the reason in ``error``."""
    return JobStatus(id=d.name, dir=str(d), name=d.name, state=DAMAGED, error=reason)


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
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= _PID_MAX:
        return False  # None, a damaged record, or -1/0 (which would signal whole process groups)
    if start is not None and not isinstance(start, str):
        start = str(start)
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
        if launched and isinstance(launched.get("pid"), int):
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
        d = Path(info["dir"]) if info and isinstance(info.get("dir"), str) and info["dir"] else None
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


def describe(job: JobHandle | str | Path, root: str | Path | None = None) -> JobStatus:
    """:func:`status` for pages and listings: a damaged or vanished job folder comes back as state ``damaged``
    with the reason in ``error`` instead of raising, so one bad folder never takes a page down."""
    try:
        return status(job, root)
    except (JobError, OSError) as err:
        return damaged_status(Path(job.dir if isinstance(job, JobHandle) else job), str(err))


def list_jobs(root: str | Path | None = None) -> list[JobStatus]:
    """All jobs under ``root`` (default ``jobs_dir()``), oldest first. Finds them again after an app restart."""
    d = Path(root) if root is not None else paths.jobs_dir()
    if not d.is_dir():
        return []
    out = []
    for sub in d.iterdir():
        if sub.is_dir() and not sub.name.startswith(".") and os.path.lexists(sub / STATUS_FILE):
            try:
                out.append(_refresh(sub))
            except (JobError, OSError) as err:  # listed as damaged with its reason; the other jobs still list
                out.append(damaged_status(sub, str(err)))
    return sorted(out, key=lambda s: s.submitted)


def read_metrics(job: JobHandle | str | Path, root: str | Path | None = None) -> list[dict]:
    """The per-epoch records so far (a line being written right now is skipped)."""
    p = job_dir(job, root) / METRICS_FILE
    try:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()  # a damaged byte costs its line only
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


def _lock_job(d: Path, wait_s: float = 0.0) -> int | None:
    """Take the job's flock (``job.lock``); the fd, or None when another live process holds it. The kernel drops
    the lock when its holder dies, so a killed worker never blocks a resume."""
    import fcntl

    try:
        fd = os.open(d / JOB_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise JobError(f"cannot lock the job folder {d}: {err.strerror or err}") from None
    deadline = time.time() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.time() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.05)


def resume(job: JobHandle | str | Path, root: str | Path | None = None) -> JobHandle:
    """Restart a failed, cancelled or interrupted job from its last checkpoint (``workdir/last``); queues it again.
    Two resumes at once (two tabs, two processes) start one worker: the job lock refuses the second."""
    d = job_dir(job, root)
    fd = _lock_job(d, _RESUME_WAIT_S)  # a finished worker may still be exiting (it holds the lock until it has)
    if fd is None:
        raise JobError(f"job {d.name} is already being resumed or run by another process; wait for it")
    try:
        return _resume_locked(d)
    finally:
        os.close(fd)  # the new worker takes the lock over


def _resume_locked(d: Path) -> JobHandle:
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


def _finite(v: Any) -> float | None:
    import math

    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


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
    minutes, epochs = _finite(cfg.get("minutes")), _finite(cfg.get("epochs"))  # config.json may be damaged
    if minutes:
        guesses.append(max(0.0, minutes * 60 - ran))
    recs = read_metrics(d)
    if epochs and recs:
        epoch = recs[-1].get("epoch")
        done = max(epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else 0, len(recs))
        per_epoch = ran / max(len(recs), 1)
        guesses.append(max(0.0, (epochs - done) * per_epoch))
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


def _fault_point(name: str) -> None:
    """Tests kill the real worker at a named point (``TEMZOO_KILL_AT=<name>``): SIGKILL, exactly as a crash."""
    if os.environ.get("TEMZOO_KILL_AT") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _installed(st: JobStatus) -> Path | None:
    """The local-zoo folder this job already installed (a kill after the rename, before ``done``), else None."""
    from temzoo.io.outputs import read_marker

    dest = st.extra.get("install_to") if isinstance(st.extra, dict) else None
    if not isinstance(dest, str) or not Path(dest).is_dir():
        return None
    rec = read_marker(Path(dest))
    return Path(dest) if rec and rec.get("kind") == "model" and rec.get("job") == st.id else None


def _install_result(result: Path, st: JobStatus, d: Path) -> Path:
    """Copy the result folder into the local zoo under a free name: into a temporary sibling, then one rename.

    Idempotent across kills: the chosen name is recorded in ``status.extra["install_to"]`` before the copy, the
    installed folder's marker names the job, and a resumed worker reuses both (no second copy, no leftovers)."""
    from temzoo.io.outputs import recover

    done = _installed(st)
    if done is not None:
        return done
    zoo = Path(st.zoo_dir or paths.local_zoo_dir())
    zoo.mkdir(parents=True, exist_ok=True)
    dest = Path(st.extra["install_to"]) if isinstance(st.extra.get("install_to"), str) else None
    if dest is None or dest.parent != zoo or os.path.lexists(dest):
        dest, n = zoo / st.name, 2
        while os.path.lexists(dest):
            dest, n = zoo / f"{st.name}-{n}", n + 1
        st = _update_status(d, extra={**st.extra, "install_to": str(dest)})
    recover(dest)  # the temporary copy of an attempt killed mid-install
    _copy_model(result, dest, {"job": st.id})
    _fault_point("installed")
    return dest


def install_folder(result: Path, zoo: Path, name: str) -> Path:
    """Copy a result folder into ``zoo`` under a free name (``name``, ``name-2``, ...; never over anything), copied
    to a temporary sibling, then renamed; its card is titled with that name and loads from that folder."""
    name = _safe_name(name)
    zoo.mkdir(parents=True, exist_ok=True)
    dest, n = zoo / name, 2
    while os.path.lexists(dest):
        dest, n = zoo / f"{name}-{n}", n + 1
    _copy_model(result, dest, {})
    return dest


def _copy_model(result: Path, dest: Path, marker: dict) -> None:
    """``result`` copied to a temporary sibling of ``dest`` (marked as temzoo's model, card retitled to ``dest``),
    then renamed into place; a failure removes only the temporary copy."""
    from temzoo.io.outputs import sibling, write_marker
    from temzoo.zoo.cards import retitle_card

    tmp = sibling(dest)
    try:
        shutil.copytree(result, tmp, dirs_exist_ok=True)
        write_marker(tmp, "model", marker)
        retitle_card(tmp, dest.name, dest)
        _fault_point("install-copied")
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
    done = _installed(st)
    if done is not None:  # a kill came after the install and before "done": nothing left to do
        log(f"already installed as {done}")
        return done
    result = d / "result"
    if not (st.extra.get("trained") and (result / "model.safetensors").is_file()):
        result = _train_with_oom_retry(d, st, cancelled, log)
        if cancelled():
            return None
        st = _update_status(d, extra={**_read_status(d).extra, "trained": True})
    return _install_result(result, _read_status(d), d)


def run_worker(d: str | Path) -> int:
    """The job process: wait for the queue, train, install the result, record the outcome in status.json."""
    d = Path(d)
    job_fd = _lock_job(d, _LOCK_WAIT_S)
    if job_fd is None:  # another worker owns this job: leave it (and its status) alone
        print(f"job {d.name}: another worker runs it; this one exits", flush=True)
        return 0
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
        os.close(job_fd)  # the outcome is recorded: the job may be resumed now


if __name__ == "__main__":
    sys.exit(run_worker(sys.argv[1]))
