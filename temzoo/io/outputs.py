"""Output folders: the one place that decides where temzoo may write, and writes there without losing anything.

Rules (docs/RELIABILITY.md, class 1), for every command and every save of the app:

- an existing non-empty folder is refused in one line unless temzoo made it (a ``.temzoo-output`` marker naming the
  kind and the files it wrote) for the same kind of output, ``--overwrite`` is given, and it holds nothing else;
- never inside (or above) an input folder, never an input file's own folder, never in the bundled zoo, never over a
  model that already sits in the local zoo;
- everything is written into a temporary sibling (``.<name>.temzoo-tmp-<pid>-<random>``) that is renamed into place;
  a failure removes only that sibling. Siblings of dead processes are removed by the next run; the previous output
  parked during a swap (``.<name>.temzoo-old-<pid>``) is put back if the swap was cut short.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from temzoo.errors import TemzooError

MARKER = ".temzoo-output"
TMP_TAG, WORK_TAG, OLD_TAG = ".temzoo-tmp-", ".temzoo-work-", ".temzoo-old-"
# What each command writes; one kind never replaces another (a prediction never lands over a model).
KINDS = ("model", "prediction", "batch", "simulation", "workdir")


class OutputError(TemzooError):
    """An output folder that temzoo refuses to write (it would delete, overwrite or mix with files it did not make)."""


@dataclass(frozen=True)
class OutputPlan:
    """A checked output folder: ``final`` is where the result appears, ``replace`` whether an old output goes."""

    final: Path
    kind: str
    replace: bool = False
    merge: bool = False
    overwrite: bool = False
    option: str = "--out"


def resolved(p: str | os.PathLike) -> Path:
    """Absolute, ``~`` expanded, symlinks kept (a link is judged where it is, its target by the OS)."""
    return Path(os.path.abspath(Path(p).expanduser()))


def _real(p: str | os.PathLike) -> Path:
    return Path(os.path.realpath(Path(p).expanduser()))


def _within(p: Path, root: Path) -> bool:
    """``p`` is ``root`` or inside it, compared through symlinks (a link to an input folder is that folder)."""
    p, root = _real(p), _real(root)
    return p == root or root in p.parents


def read_marker(folder: Path) -> dict | None:
    """The folder's ``.temzoo-output`` record, or None when absent or unreadable (then temzoo did not make it)."""
    try:
        rec = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        # A batch folder of an earlier version carries only its own marker (temzoo.batch.MARKER).
        return {"kind": "batch", "files": []} if (folder / ".temzoo-batch.json").is_file() else None
    if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str):
        return None
    rec = dict(rec)
    files = rec.get("files")
    rec["files"] = [f for f in files if isinstance(f, str)] if isinstance(files, list) else []
    return rec


def write_marker(folder: Path, kind: str, extra: dict | None = None) -> None:
    """Record that temzoo made ``folder`` (kind + every top-level name in it), so a later run may replace it."""
    names = sorted(p.name for p in folder.iterdir() if p.name != MARKER)
    rec = {"kind": kind, "files": names, **(extra or {})}
    (folder / MARKER).write_text(json.dumps(rec, indent=1), encoding="utf-8")


def _refuse_protected(out: Path, option: str) -> None:
    from temzoo.paths import bundled_zoo_dir, local_zoo_dir

    bundled = resolved(bundled_zoo_dir())
    if _within(out, bundled) or _within(bundled, out):
        raise OutputError(f"{option} {out} is in (or holds) the bundled zoo {bundled}; temzoo never writes there: "
                          "give a folder of your own")
    zoo = resolved(local_zoo_dir())
    if _within(zoo, out) and out != zoo:
        raise OutputError(f"{option} {out} holds your local zoo {zoo}; give a folder of its own")
    if _real(out) == _real(zoo) or (_real(out.parent) == _real(zoo) and out.exists()):
        raise OutputError(f"{option} {out} is a model in your local zoo; temzoo never replaces it: give a new name")


def _refuse_inputs(out: Path, option: str, inputs: Iterable) -> None:
    """An input folder: not the folder, nothing inside it, nothing above it. An input file (or glob): not its
    folder, nothing above it."""
    for raw in inputs:
        if raw is None or str(raw) in ("", "scratch", "auto"):
            continue
        p = resolved(raw)
        if p.is_dir():
            if _within(out, p) or _within(p, out):
                raise OutputError(f"{option} {out} is (or is inside, or holds) the input folder {p}; temzoo never "
                                  "writes among its inputs: give a separate folder")
        elif _real(out) == _real(p.parent) or _within(p, out):
            raise OutputError(f"{option} {out} is the folder of the input {p} (or holds it); temzoo never writes "
                              "among its inputs: give a separate folder")


def _foreign_names(out: Path, rec: dict) -> list[str]:
    """Names in ``out`` that temzoo's marker does not list (the user's files, which are never deleted)."""
    made = set(rec.get("files") or ()) | {MARKER}
    return sorted(p.name for p in out.iterdir() if p.name not in made)


def check_output(out: str | os.PathLike, kind: str, *, overwrite: bool = False, inputs: Iterable = (),
                 option: str = "--out", merge: bool = False, resume: bool = False) -> OutputPlan:
    """Refuse (one-line :class:`OutputError`) an output folder that would lose or mix with files temzoo did not make.

    ``inputs``: the files, folders and globs the command reads. ``merge``: new files are added beside an
    earlier output of the same kind (predict); ``resume``: an earlier output of the same kind is continued (batch,
    --resume) without --overwrite.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    final = resolved(out)
    if final.exists() and not final.is_dir():
        raise OutputError(f"{option} {final} is a file; give a folder")
    _refuse_protected(final, option)
    _refuse_inputs(final, option, inputs)
    recover(final)
    if not final.is_dir() or not any(final.iterdir()):
        return OutputPlan(final, kind, option=option, merge=merge, overwrite=overwrite)
    rec = read_marker(final)
    if rec is None:
        raise OutputError(f"{option} {final} is not empty and temzoo did not make it; temzoo never writes over files "
                          "it did not create: give a new or empty folder")
    if rec["kind"] != kind:
        raise OutputError(f"{option} {final} holds a temzoo {rec['kind']} output, not a {kind}; give another folder")
    if resume or merge:  # files are added beside the earlier ones; a clash needs --overwrite (checked at commit)
        return OutputPlan(final, kind, option=option, merge=True, overwrite=overwrite)
    if not overwrite:
        raise OutputError(f"{option} {final} already holds a temzoo {kind} output; add --overwrite to replace it "
                          "or give a new folder")
    foreign = _foreign_names(final, rec)
    if foreign:
        shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise OutputError(f"{option} {final} holds files temzoo did not write ({shown}); move them out or give a new "
                          "folder")
    return OutputPlan(final, kind, replace=True, overwrite=True, option=option)


# ------------------------------------------------------------------------------------------- temporaries and swap
def _owner(name: str, stem: str, tag: str) -> int | None:
    """The pid in ``.<stem><tag><pid>[-<random>]``, or None when ``name`` is not such a sibling."""
    head = f".{stem}{tag}"
    if not name.startswith(head):
        return None
    pid = name[len(head):].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def _dead(pid: int) -> bool:
    """Whether no process has this pid (a live or unknown one counts as alive: its files are never touched)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def sibling(final: Path, tag: str = TMP_TAG) -> Path:
    """A new empty folder beside ``final`` owned by this process (same filesystem: the rename is atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    p = final.with_name(f".{final.name}{tag}{os.getpid()}-{secrets.token_hex(4)}")
    p.mkdir()
    return p


def recover(final: Path) -> list[str]:
    """Clean up after killed runs that wrote ``final``: remove their temporaries and work folders, and put back an
    earlier output parked by a swap that was cut short. Only siblings of dead processes are touched."""
    final = resolved(final)
    if not final.parent.is_dir():
        return []
    done = []
    for p in sorted(final.parent.iterdir()):
        for tag in (OLD_TAG, TMP_TAG, WORK_TAG):
            pid = _owner(p.name, final.name, tag)
            if pid is None or not _dead(pid):
                continue
            if tag == OLD_TAG and not final.exists():
                os.replace(p, final)  # the swap stopped between its two renames: the old output is the output
                done.append(f"restored {final}")
            else:
                shutil.rmtree(p, ignore_errors=True)
                done.append(f"removed {p.name}")
    return done


def _merge(plan: OutputPlan, tmp: Path) -> None:
    """Move each new entry of ``tmp`` into the existing output (one rename each); the marker lists them all."""
    rec = read_marker(plan.final) or {"kind": plan.kind, "files": []}
    names = [p.name for p in tmp.iterdir() if p.name != MARKER]
    clash = [n for n in names if os.path.lexists(plan.final / n)]
    foreign = [n for n in clash if n not in rec["files"]]
    if foreign:
        raise OutputError(f"{plan.option} {plan.final} holds {foreign[0]}, which temzoo did not write; move it out or "
                          "give a new folder")
    if clash and not plan.overwrite:
        raise OutputError(f"{plan.option} {plan.final} already holds {clash[0]}; add --overwrite to replace it "
                          "or give a new folder")
    for n in names:
        dst = plan.final / n
        if dst.is_dir() and not dst.is_symlink():
            swap_in(tmp / n, dst)
        else:
            os.replace(tmp / n, dst)
    rec["files"] = sorted(set(rec["files"]) | set(names))
    (plan.final / MARKER).write_text(json.dumps(rec, indent=1), encoding="utf-8")
    shutil.rmtree(tmp, ignore_errors=True)


def swap_in(src: Path, dst: Path) -> None:
    """Put folder ``src`` where ``dst`` is: ``dst`` parked as ``.<name>.temzoo-old-<pid>``, ``src`` renamed, the
    park removed. A kill between the two renames is undone by :func:`recover`. No ``dst``: one rename."""
    if not os.path.lexists(dst):
        os.replace(src, dst)
        return
    old = dst.with_name(f".{dst.name}{OLD_TAG}{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def commit(plan: OutputPlan, tmp: Path, extra: dict | None = None) -> Path:
    """Make the finished temporary sibling ``tmp`` the output (marker written first); returns ``plan.final``."""
    if plan.merge and (plan.final / MARKER).is_file():
        write_marker(tmp, plan.kind, extra)  # its file list is replaced by the merged one
        _merge(plan, tmp)
        return plan.final
    write_marker(tmp, plan.kind, extra)
    if plan.final.is_dir() and any(plan.final.iterdir()):
        swap_in(tmp, plan.final)  # check_output allowed it: a temzoo output of this kind, --overwrite given
    else:
        os.replace(tmp, plan.final)  # a rename onto an empty folder replaces it
    return plan.final


@contextmanager
def written(plan: OutputPlan, extra: dict | None = None) -> Iterator[Path]:
    """``with written(plan) as tmp:`` write into ``tmp``; on success it becomes ``plan.final``, on any failure only
    ``tmp`` is removed."""
    tmp = sibling(plan.final)
    try:
        yield tmp
        commit(plan, tmp, extra)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(plan: OutputPlan, src: Path, extra: dict | None = None) -> Path:
    """Move a finished folder (e.g. a training result in a work folder) to ``plan.final`` via a temporary sibling;
    copied when it lies on another filesystem."""
    tmp = sibling(plan.final)
    try:
        try:
            os.replace(src, tmp)
        except OSError:  # another filesystem (EXDEV): copy instead; ``src`` stays where it was
            shutil.copytree(src, tmp, dirs_exist_ok=True)
        return commit(plan, tmp, extra=extra)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_workdir(workdir: str | os.PathLike, *, resume: bool, overwrite: bool, inputs: Iterable = ()) -> Path:
    """``--workdir``: new or empty (then marked as temzoo's), or an earlier temzoo work folder continued with
    ``--resume`` (or restarted with ``--overwrite``); anything else is refused."""
    wd = resolved(workdir)
    if wd.exists() and not wd.is_dir():
        raise OutputError(f"--workdir {wd} is a file; give a folder")
    _refuse_protected(wd, "--workdir")
    _refuse_inputs(wd, "--workdir", inputs)
    if wd.is_dir() and any(wd.iterdir()):
        rec = read_marker(wd)
        legacy = (wd / "last").is_dir() or any(wd.glob(".last.old-*"))  # made before markers existed
        if (rec is None or rec["kind"] != "workdir") and not legacy:
            raise OutputError(f"--workdir {wd} is not empty and is not a temzoo work folder; give a new or empty "
                              "folder")
        if not (resume or overwrite):
            raise OutputError(f"--workdir {wd} holds an earlier run; add --resume to continue it or --overwrite to "
                              "start over")
        return wd
    wd.mkdir(parents=True, exist_ok=True)
    write_marker(wd, "workdir")
    return wd


@contextmanager
def work_folder(final: Path) -> Iterator[Path]:
    """A hidden work folder beside ``final`` for a run without ``--workdir``; removed when the run ends, and by the
    next run's :func:`recover` when this process was killed."""
    work = sibling(resolved(final), WORK_TAG)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
