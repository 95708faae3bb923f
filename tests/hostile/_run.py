"""The hostile-input harness of issue #12: run hostile cases in subprocesses under a wall-clock and a memory limit.

The contract every case is held to (ARCHITECTURE.md): exit 0, or exit 2 with exactly ONE stderr line starting
``error: ``; never a ``Traceback``, never "unexpected failure", never a hang (wall-clock limit), memory bounded
(``RLIMIT_AS`` of every subprocess, so a bomb that escaped the reader's own limit kills the case instead of the
machine), and no file lost or overwritten (:func:`snapshot` / :func:`assert_kept`).

Two ways to run cases:

- :func:`run_cli` / :func:`run_python`: one cold subprocess per case (``python -m temzoo ...`` costs 2-3 s). Use it
  for the few cases that need a real process (a FIFO, argv as the shell passes it, a kill).
- :func:`run_batch`: ONE subprocess runs many cases, each under its own ``SIGALRM`` limit, reporting one JSON line per
  case as it goes (a crash names the case that was running). A case is a JSON item handed to a module-level function
  ``"package.module:function"``; that function returns (the case passed), raises a TemzooError or
  :class:`CleanRefusal` (a clean one-line refusal) or anything else (a failure, reported with its type and place).
  :func:`cli_in_process` is such a function for CLI argv cases: ``temzoo.cli.main`` with stderr captured, checked
  against the exact CLI contract, without the cold start.

Generators in each class module build :class:`Case` lists; :func:`batches` groups them for ``pytest.mark.parametrize``
and :func:`record` counts them per class (printed at the end of the run by tests/hostile/conftest.py and written to
test-artifacts/hostile.json). Class modules: test_inputs.py (classes 2, 5, 6), test_paths.py (1, 3, 4),
test_labels.py and test_checkpoints.py (7, 8).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# The whole tests/hostile/ suite (all classes, all modules) must finish within this on CI's 2 cores; the rest of the
# suite takes ~9 min and CI allows 30. Each module's share is written next to its generators (MODULE_BUDGET_S).
HARNESS_BUDGET_S = 900
SUBPROCESS_TIMEOUT_S = 120.0  # one subprocess (one cold case, or one whole batch)
ITEM_TIMEOUT_S = 25.0  # one case inside a batch: above the reader's own limit below, so a hang is OUR failure
MEMORY_LIMIT_MB = 8192  # RLIMIT_AS of every subprocess: torch alone maps ~3 GB of address space at import
# The environment every subprocess gets: tight reader limits so bombs and loops are stopped fast.
HOSTILE_ENV = {"HF_HUB_OFFLINE": "1", "TEMZOO_READ_TIMEOUT_S": "5", "TEMZOO_READ_MEMORY_MB": "1024",
               "TEMZOO_TEST": "1", "PYTHONPATH": os.pathsep.join(
                   p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
COUNTS_FILE = REPO / "test-artifacts" / "hostile.json"
COUNTS: dict[str, dict[str, float]] = {}  # "class N: what" -> {"cases": n, "seconds": s}, this pytest process


class CleanRefusal(Exception):
    """Raised by a batch function: the case was refused cleanly (one line, the message)."""


class _ItemTimeout(BaseException):
    """Raised by SIGALRM inside a batch worker; a BaseException so that ``except Exception`` in temzoo can't eat it."""


# ------------------------------------------------------------------------------------------------ cases, counts


@dataclass
class Case:
    """One hostile case: ``item`` is handed to the batch function (JSON-able); ``expect`` what passing means:
    "any" (ok or a clean refusal), "error" (must be refused), "ok" (must work); ``match`` a regex the refusal
    must contain."""

    id: str
    item: dict[str, Any]
    cls: int
    expect: str = "any"
    match: str | None = None


def batches(cases: list[Case], size: int = 50, prefix: str = "") -> list:
    """``pytest.param`` groups of at most ``size`` cases each, for ``@pytest.mark.parametrize("group", ...)``."""
    import pytest

    return [pytest.param(cases[i:i + size], id=f"{prefix}{i // size}") for i in range(0, len(cases), size)]


def record(what: str, n: int, seconds: float = 0.0) -> None:
    """Count ``n`` cases under ``what`` (e.g. "class 2: mutated files"); summed per run, printed at the end."""
    c = COUNTS.setdefault(what, {"cases": 0, "seconds": 0.0})
    c["cases"] += n
    c["seconds"] += seconds
    try:
        COUNTS_FILE.parent.mkdir(exist_ok=True)
        COUNTS_FILE.write_text(json.dumps({"budget_s": HARNESS_BUDGET_S, "counts": COUNTS}, indent=1))
    except OSError:
        pass


# ------------------------------------------------------------------------------------------------ subprocesses


@dataclass
class Proc:
    """What one subprocess did."""

    argv: list[str]
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    max_rss_mb: float
    timed_out: bool

    def describe(self) -> str:
        return (f"{self.argv!r}: rc={self.rc} in {self.seconds:.1f} s, {self.max_rss_mb:.0f} MB"
                f"{' (TIMED OUT)' if self.timed_out else ''}\nstdout: {self.stdout[-800:]}\nstderr: {self.stderr[-3000:]}")


def run(argv: list[str], *, cwd: str | Path | None = None, env: dict[str, str] | None = None,
        timeout: float = SUBPROCESS_TIMEOUT_S, memory_mb: int = MEMORY_LIMIT_MB, stdin: bytes = b"") -> Proc:
    """Run ``argv`` in its own session under ``RLIMIT_AS`` and a wall-clock limit (then the whole group is killed)."""
    limit = memory_mb * 2**20

    def _limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    full_env = {**os.environ, **HOSTILE_ENV, **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.monotonic()
        p = subprocess.Popen(argv, cwd=cwd or REPO, env=full_env, stdin=subprocess.PIPE, stdout=out, stderr=err,
                             start_new_session=True, preexec_fn=_limit)
        with contextlib.suppress(OSError):
            p.stdin.write(stdin)
        p.stdin.close()
        status, usage, timed_out = _wait(p, timeout)
        seconds = time.monotonic() - t
        out.seek(0)
        err.seek(0)
        return Proc(argv, status, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                    seconds, usage.ru_maxrss / 1024 if usage else 0.0, timed_out)


def _wait(p: subprocess.Popen, timeout: float) -> tuple[int | None, Any, bool]:
    """``os.wait4`` (for the child's max RSS) until ``timeout``; then SIGKILL the process group."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            _kill_group(p.pid)  # leftovers of the session (a reader child) must not outlive the case
            return p.returncode, usage, False
        if time.monotonic() > deadline:
            _kill_group(p.pid)
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            return None, usage, True
        time.sleep(0.02)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_cli(*args: str, **kw: Any) -> Proc:
    """``python -m temzoo ARGS`` (a cold start)."""
    return run([sys.executable, "-m", "temzoo", *args], **kw)


def run_python(code: str, **kw: Any) -> Proc:
    """``python -c CODE``; the snippet reports failure by raising (a traceback on stderr) or exiting non-zero."""
    return run([sys.executable, "-c", code], **kw)


def assert_clean(proc: Proc, expect: str = "any", match: str | None = None) -> str:
    """The CLI contract; returns the error line ("" on success)."""
    assert not proc.timed_out, "HANG: " + proc.describe()
    assert "Traceback" not in proc.stderr and "unexpected failure" not in proc.stderr, proc.describe()
    assert proc.max_rss_mb < MEMORY_LIMIT_MB, proc.describe()
    if proc.rc == 0:
        assert expect != "error", "accepted, should be refused: " + proc.describe()
        return ""
    assert proc.rc == 2, "neither exit 0 nor 2: " + proc.describe()
    lines = proc.stderr.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), "not ONE error line: " + proc.describe()
    assert expect != "ok", "refused, should work: " + proc.describe()
    if match:
        import re

        assert re.search(match, lines[0]), f"error line does not match {match!r}: {lines[0]}"
    return lines[0]


# ------------------------------------------------------------------------------------------------ snapshots


def snapshot(folder: str | Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder`` (symlinks not followed) -> (size, sha256)."""
    root = Path(folder)
    out: dict[str, tuple[int, str]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                out[str(p.relative_to(root))] = (-1, os.readlink(p) if p.is_symlink() else "special")
                continue
            data = p.read_bytes()
            out[str(p.relative_to(root))] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def assert_kept(before: dict[str, tuple[int, str]], folder: str | Path) -> None:
    """No file of ``before`` lost or changed (new files are allowed: the command may create its own outputs)."""
    after = snapshot(folder)
    lost = [k for k in before if k not in after]
    changed = [k for k in before if k in after and after[k] != before[k]]
    assert not lost and not changed, f"in {folder}: lost {lost[:10]}, overwritten {changed[:10]}"


# ------------------------------------------------------------------------------------------------ batches


@dataclass
class Outcome:
    """One case of a batch: status "ok", "error" (clean refusal), "bad-error" (refusal breaking the contract),
    "traceback" (an unexpected exception), "hang" (over its limit) or "crash" (the worker died in it)."""

    id: str
    status: str
    message: str = ""
    seconds: float = 0.0
    case: Case | None = field(default=None, repr=False)


def run_batch(func: str, cases: list[Case], *, item_timeout: float = ITEM_TIMEOUT_S, cwd: str | Path | None = None,
              env: dict[str, str] | None = None, memory_mb: int = MEMORY_LIMIT_MB,
              restarts: int = 5) -> tuple[list[Outcome], Proc]:
    """Run ``func`` ("module:function") on every case's item in ONE subprocess; one :class:`Outcome` per case.

    Should the worker die in a case (a crash, the memory limit), that case is reported as "crash" and a fresh worker
    goes on with the rest (at most ``restarts`` times); returns the outcomes and the last worker's :class:`Proc`.
    """
    done: dict[str, Outcome] = {}
    todo = list(cases)
    proc = None
    for _ in range(restarts + 1):
        proc, running = _run_worker(func, todo, item_timeout, cwd, env, memory_mb, done)
        if running is None or running not in {c.id for c in todo}:
            break
        how = "timed out" if proc.timed_out else f"rc {proc.rc}"
        tail = " ".join(proc.stderr[-300:].split())
        done[running] = Outcome(running, "crash", f"the worker died in this case ({how}): {tail}")
        todo = [c for c in todo if c.id not in done]
        if not todo:
            break
    outcomes = []
    for c in cases:
        o = done.get(c.id) or Outcome(c.id, "not-run", f"the worker ended first (rc {proc.rc}, "
                                                      f"timed out: {proc.timed_out})")
        o.case = c
        outcomes.append(o)
    return outcomes, proc


def _run_worker(func: str, cases: list[Case], item_timeout: float, cwd: Any, env: Any, memory_mb: int,
                done: dict[str, Outcome]) -> tuple[Proc, str | None]:
    """One worker over ``cases``; fills ``done``; returns its Proc and the id of the case it died in (or None)."""
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "out.jsonl"
        spec.write_text(json.dumps({"func": func, "item_timeout": item_timeout,
                                    "cases": [{"id": c.id, "item": c.item} for c in cases]}))
        timeout = min(SUBPROCESS_TIMEOUT_S * 4, 30 + item_timeout * len(cases))
        proc = run([sys.executable, "-m", "tests.hostile._run", str(spec), str(out)], cwd=cwd, env=env,
                   timeout=timeout, memory_mb=memory_mb)
        lines = out.read_text().splitlines() if out.exists() else []
    running = None
    for line in lines:
        rec = json.loads(line)
        if rec["status"] == "start":
            running = rec["id"]
        else:
            running = None
            done[rec["id"]] = Outcome(rec["id"], rec["status"], rec.get("message", ""), rec.get("seconds", 0.0))
    if running is None and len(done) < len(cases) and cases:
        running = next((c.id for c in cases if c.id not in done), None) if not lines else None
    return proc, running


def failures(outcomes: list[Outcome]) -> list[str]:
    """The outcomes that break the contract or the case's expectation, one readable line each."""
    import re

    bad = []
    for o in outcomes:
        c = o.case
        expect = c.expect if c else "any"
        if o.status not in ("ok", "error"):
            bad.append(f"{o.id}: {o.status.upper()} {o.message}")
        elif o.status == "ok" and expect == "error":
            bad.append(f"{o.id}: accepted, should be refused")
        elif o.status == "error" and expect == "ok":
            bad.append(f"{o.id}: refused, should work: {o.message}")
        elif o.status == "error" and c and c.match and not re.search(c.match, o.message):
            bad.append(f"{o.id}: refusal does not match {c.match!r}: {o.message}")
    return bad


def check_batch(func: str, cases: list[Case], what: str, **kw: Any) -> list[Outcome]:
    """:func:`run_batch` + count the cases under ``what`` + assert none failed (all failures in one message)."""
    t = time.monotonic()
    outcomes, proc = run_batch(func, cases, **kw)
    record(what, len(cases), time.monotonic() - t)
    slow = sorted(outcomes, key=lambda o: -o.seconds)[:3]
    print(f"{what}: {len(cases)} cases in {time.monotonic() - t:.1f} s; slowest "
          + ", ".join(f"{o.id} {o.seconds:.1f} s" for o in slow))
    bad = failures(outcomes)
    assert proc.max_rss_mb < MEMORY_LIMIT_MB, proc.describe()
    assert not bad, f"{len(bad)} of {len(cases)} cases failed:\n" + "\n".join(bad[:40])
    return outcomes


# ------------------------------------------------------------------------------------------------ the worker


def cli_in_process(item: dict[str, Any]) -> str:
    """Batch function: ``temzoo.cli.main(item["argv"])`` in this process, held to the exact CLI contract.

    ``item["cwd"]`` (optional) is the working folder for the call. Returns "" when it exited 0; raises
    :class:`CleanRefusal` with the error line when it was refused in one line; raises AssertionError otherwise.
    """
    from temzoo import cli

    err, out = io.StringIO(), io.StringIO()
    old = os.getcwd()
    try:
        if item.get("cwd"):
            os.chdir(item["cwd"])
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                rc = cli.main(item["argv"])
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(old)
    text = err.getvalue()
    if "Traceback" in text or "unexpected failure" in text:
        raise AssertionError(" ".join(text.split())[:500])
    if rc == 0:
        return ""
    lines = text.rstrip("\n").split("\n")
    if rc != 2 or len(lines) != 1 or not lines[0].startswith("error: "):
        raise AssertionError(f"rc={rc}, stderr {text[-500:]!r}")
    raise CleanRefusal(lines[0])


def _worker(spec_path: str, out_path: str) -> None:
    """Run a batch spec; one JSON line per case start and end, flushed (a crash leaves the running case's id)."""
    from temzoo.errors import TemzooError

    spec = json.loads(Path(spec_path).read_text())
    mod, _, name = spec["func"].partition(":")
    func = getattr(importlib.import_module(mod), name)

    def _alarm(signum: int, frame: Any) -> None:
        raise _ItemTimeout()

    signal.signal(signal.SIGALRM, _alarm)
    with open(out_path, "a", buffering=1) as out:
        for case in spec["cases"]:
            out.write(json.dumps({"id": case["id"], "status": "start"}) + "\n")
            t = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, spec["item_timeout"])
            try:
                func(case["item"])
                status, msg = "ok", ""
            except _ItemTimeout:
                status, msg = "hang", f"over {spec['item_timeout']:g} s"
            except (TemzooError, CleanRefusal) as err:
                msg = str(err)
                one_line = "\n" not in msg.strip() and "unexpected failure" not in msg and "Traceback" not in msg
                status = "error" if one_line else "bad-error"
            except BaseException as err:  # noqa: BLE001 - reported as the case's failure
                tb = traceback.extract_tb(err.__traceback__)[-1:]
                where = f" at {tb[0].filename}:{tb[0].lineno}" if tb else ""
                status, msg = "traceback", " ".join(f"{type(err).__name__}: {err}".split())[:400] + where
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            out.write(json.dumps({"id": case["id"], "status": status, "message": msg,
                                  "seconds": round(time.monotonic() - t, 3)}) + "\n")


if __name__ == "__main__":
    # Import the worker by its package name: run as __main__, this file's CleanRefusal would be a second class.
    from tests.hostile._run import _worker as worker

    worker(sys.argv[1], sys.argv[2])
