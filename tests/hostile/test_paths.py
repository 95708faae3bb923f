"""Hostile paths and state of issue #12, classes 1 (data loss through output paths), 3 (corrupt state) and 4 (races),
generated in bulk and run in batches through tests/hostile/_run.py.

- class 1: every writing command (finetune, pretrain-denoise, predict, batch predict, simulate) x 27 hostile output
  folders (the user's files, each input folder, inside / above / a symlink to them, ``.`` in them, the local zoo,
  the bundled zoo, a file, temzoo outputs of another kind, with foreign files, with a junk marker, ...) x with and
  without ``--overwrite``, plus hostile ``--workdir`` folders. Each case runs in a fresh copy of a small world (its own
  TEMZOO_HOME); it must be refused in ONE ``error:`` line naming the option, and the world must be unchanged: no file
  lost, changed or added (every path compared by size + sha256). The bundled zoo is compared before and after.
- class 3: 27 damaged ``status.json`` variants, 6 damaged side files (worker.pid, config.json, metrics.jsonl, queue
  entries) x every job API call a page makes; 19 damaged local-zoo folders and a poisoned HF cache entry x listing
  and ``zoo list``. No traceback; the good job and the good model still list.
- class 4: the job lock, held by another process, refuses resume (real flock, real second process: the batch worker).
  The SIGKILL-at-install cases need real workers and live in tests/test_job_state.py.

Contract per case (see _run.py). Budget of this module: :data:`MODULE_BUDGET_S` (part of HARNESS_BUDGET_S).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.hostile._run import Case, batches, check_batch

MODULE_BUDGET_S = 150
COMMANDS = ("finetune", "pretrain-denoise", "predict", "batch", "simulate")
PATH_FUNC = "tests.hostile.test_paths:path_case"
STATE_FUNC = "tests.hostile.test_paths:state_case"
ZOO_FUNC = "tests.hostile.test_paths:zoo_case"


# =============================================================================================== class 1: paths
def make_world(root: Path) -> Path:
    """A small world: a labelled set, a folder of the user's files, a model in the local zoo, earlier temzoo
    outputs of each kind (one with a foreign file, one with a junk marker, one whose marker is a folder)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / "labels" / sub).mkdir(parents=True)
    for i in range(2):
        Image.fromarray((rng.random((48, 48)) * 255).astype(np.uint8)).save(root / "labels" / "images" / f"a{i}.png")
        Image.fromarray(((rng.random((48, 48)) > 0.7) * 255).astype(np.uint8)).save(root / "labels" / "masks" / f"a{i}.png")
    (root / "mine" / "notes").mkdir(parents=True)
    (root / "mine" / "thesis.docx").write_bytes(b"precious " * 50)
    (root / "mine" / "notes" / "a.txt").write_text("more")
    (root / "hidden-only").mkdir()
    (root / "hidden-only" / ".keep").write_text("x")
    model = root / "home" / "zoo" / "mine-v1"
    model.mkdir(parents=True)
    for f, text in (("config.json", '{"_model_class": "Unet"}'), ("temzoo.json", "{}"), ("model.safetensors", "w")):
        (model / f).write_text(text)
    for name, kind, files in (("sim-out", "simulation", ["images"]), ("model-out", "model", ["config.json"]),
                              ("pred-out", "prediction", ["a0_mask.png"]), ("foreign-out", "model", ["config.json"])):
        (root / name).mkdir()
        for f in files:
            (root / name / f).write_text("made by temzoo")
        (root / name / ".temzoo-output").write_text(json.dumps({"kind": kind, "files": files}))
    (root / "foreign-out" / "my-notes.txt").write_text("the user's")
    (root / "junk-marker").mkdir()
    (root / "junk-marker" / "config.json").write_text("{}")
    (root / "junk-marker" / ".temzoo-output").write_bytes(b"\x00\xff[")
    (root / "dir-marker" / ".temzoo-output").mkdir(parents=True)
    (root / "dir-marker" / "x").write_text("x")
    (root / "link-mine").symlink_to(root / "mine")
    (root / "link-images").symlink_to(root / "labels" / "images")
    return root


def targets(world: Path) -> dict[str, str]:
    """Hostile ``--out`` folders, by name (strings: some are relative, some end in '/')."""
    from temzoo.paths import bundled_zoo_dir

    w, b = str(world), bundled_zoo_dir()
    return {
        "user-files": f"{w}/mine", "user-files-slash": f"{w}/mine/", "user-files-dotdot": f"{w}/mine/notes/..",
        "hidden-only": f"{w}/hidden-only", "user-file": f"{w}/mine/thesis.docx", "link-to-user-files": f"{w}/link-mine",
        "images": f"{w}/labels/images", "masks": f"{w}/labels/masks", "labelled-set": f"{w}/labels",
        "inside-images": f"{w}/labels/images/out", "inside-masks": f"{w}/labels/masks/new/out",
        "above-inputs": w, "link-to-images": f"{w}/link-images", "dot-in-images": ".",
        "local-zoo-model": f"{w}/home/zoo/mine-v1", "local-zoo-root": f"{w}/home/zoo", "temzoo-home": f"{w}/home",
        "bundled-model": str(b / "hrtem-nanoparticle"), "bundled-root": str(b), "bundled-new": str(b / "new-model"),
        "bundled-parent": str(b.parent), "other-kind-sim": f"{w}/sim-out", "other-kind-pred": f"{w}/pred-out",
        "other-kind-model": f"{w}/model-out", "foreign-files": f"{w}/foreign-out", "junk-marker": f"{w}/junk-marker",
        "dir-marker": f"{w}/dir-marker",
    }


def _argv(cmd: str, world: Path, out: str) -> list[str]:
    images, masks = world / "labels" / "images", world / "labels" / "masks"
    train = ["--epochs", "1", "--tile-size", "32", "--quiet", "--device", "cpu"]
    return {
        "finetune": ["finetune", "--images", str(images), "--masks", str(masks), "--base", "scratch",
                     "--strategy", "scratch", "--out", out, *train],
        "pretrain-denoise": ["pretrain-denoise", "--images", str(images), "--out", out, *train],
        "predict": ["predict", str(images / "a0.png"), "--model", "hrtem-nanoparticle", "--out", out],
        "batch": ["predict", str(images), "--model", "hrtem-nanoparticle", "--out", out],
        "simulate": ["simulate", "--n", "1", "--size", "64", "--out", out, "--quiet"],
    }[cmd]


# (command, folder) pairs where writing is right, so they are not hostile cases: a temzoo output of the command's own
# kind; a new folder inside a folder the command does not read (masks for all but finetune; an input FILE's folder
# is refused only as the folder itself).
ALLOWED = {("predict", "inside-images"), ("predict", "inside-masks"), ("pretrain-denoise", "inside-masks"),
           ("simulate", "inside-images"), ("simulate", "inside-masks"), ("batch", "inside-masks")}
# --overwrite changes nothing about where a command may write: tried on the folders where a user would reach for it.
OVERWRITE_TOO = {"user-files", "images", "labelled-set", "local-zoo-model", "bundled-model", "other-kind-sim",
                 "other-kind-pred", "other-kind-model", "foreign-files", "junk-marker", "dir-marker", "hidden-only"}


def _would_be_allowed(cmd: str, name: str, overwrite: bool) -> bool:
    kind = {"finetune": "model", "pretrain-denoise": "model", "predict": "prediction", "batch": "batch",
            "simulate": "simulation"}[cmd]
    own = {"other-kind-sim": "simulation", "other-kind-pred": "prediction", "other-kind-model": "model"}.get(name)
    return (cmd, name) in ALLOWED or (own == kind and (overwrite or cmd == "predict"))


def path_cases(world: Path) -> list[Case]:
    """Every hostile (command, folder, --overwrite) of one world; all must be refused."""
    cases = []
    for cmd in COMMANDS:
        for name in targets(world):
            for overwrite in (False, True):
                if overwrite and (cmd == "batch" or name not in OVERWRITE_TOO):
                    continue
                if _would_be_allowed(cmd, name, overwrite):
                    continue
                cid = f"{cmd}:{name}{':overwrite' if overwrite else ''}"
                cases.append(Case(cid, {"world": str(world), "cmd": cmd, "target": name, "overwrite": overwrite},
                                  cls=1, expect="error", match=r"--out "))
    for name in ("user-files", "images", "masks", "labelled-set", "bundled-model", "local-zoo-model", "other-kind-sim"):
        for resume in (False, True):
            cases.append(Case(f"workdir:{name}{':resume' if resume else ''}",
                              {"world": str(world), "cmd": "finetune", "workdir": name, "resume": resume},
                              cls=1, expect="error", match=r"--workdir "))
    return cases


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under ``root`` (folders too, links not followed) -> (size, sha256); a new file shows as well."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            key = str(p.relative_to(root))
            if p.is_symlink():
                out[key] = (-1, os.readlink(p))
            elif p.is_dir():
                out[key] = (-2, "dir")
            else:
                data = p.read_bytes()
                out[key] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def path_case(item: dict) -> None:
    """Batch function: run one command against one hostile folder of the world (shared by the batch: every case
    must leave it exactly as it was, so a case that changed it fails there and then)."""
    from tests.hostile._run import CleanRefusal, cli_in_process

    world = Path(item["world"])
    os.environ["TEMZOO_HOME"] = str(world / "home")
    out = targets(world)[item.get("target", "user-files")]
    argv = _argv(item["cmd"], world, out)
    if item.get("workdir"):
        wd = targets(world)[item["workdir"]]
        argv = _argv("finetune", world, str(world.parent / "new-out")) + ["--workdir", wd] + (
            ["--resume"] if item.get("resume") else [])
    argv += ["--overwrite"] if item.get("overwrite") else []
    before = tree(world)
    try:
        cli_in_process({"argv": argv, "cwd": str(world / "labels" / "images")})
    except CleanRefusal:
        after = tree(world)
        assert after == before, f"world changed: {sorted(set(after) ^ set(before))[:5]}"
        raise
    raise AssertionError(f"accepted: {argv}")


@pytest.fixture(scope="module")
def path_world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("hostile-paths") / "world")


def _bundled_snapshot() -> dict:
    from temzoo.paths import bundled_zoo_dir

    return tree(bundled_zoo_dir())


@pytest.mark.parametrize("cmd", COMMANDS + ("workdir",))
def test_output_paths(path_world, cmd):
    cases = [c for c in path_cases(path_world) if c.id.split(":")[0] == cmd]
    before, world = _bundled_snapshot(), tree(path_world)
    check_batch(PATH_FUNC, cases, "class 1: hostile output folders x commands", item_timeout=60)
    assert _bundled_snapshot() == before, "the bundled zoo changed"
    assert tree(path_world) == world


# =============================================================================================== class 3: state
GOOD = {"id": "good", "dir": "", "name": "good", "state": "done", "submitted": 1.0, "attempts": 1,
        "target": "temzoo.train.loop:train", "kind": "train", "extra": {}}


def status_variants() -> dict[str, bytes]:
    def patched(**kw) -> bytes:
        return json.dumps({**GOOD, **kw}).encode()

    return {
        "list": b"[]", "null": b"null", "binary": bytes(range(256)) * 4, "empty": b"", "truncated": b'{"id": "x", "st',
        "string": b'"running"', "number": b"42", "deep": b"[" * 50_000 + b"]" * 50_000, "huge": b" " * 2_000_000 + b"{}",
        "utf16": json.dumps(GOOD).encode("utf-16"), "pid-string": patched(state="running", pid="abc"),
        "pid-negative": patched(state="running", pid=-1), "pid-zero": patched(state="running", pid=0),
        "pid-huge": patched(state="running", pid=2 ** 64), "pid-float": patched(state="running", pid=1.5),
        "pid-list": patched(state="running", pid=[1]), "pid-bool": patched(state="running", pid=True),
        "pid-start-number": patched(state="running", pid=1, pid_start=5), "no-state": b'{"id": "x", "name": "x"}',
        "bad-state": patched(state="exploded"), "nan-time": json.dumps({**GOOD, "submitted": float("nan")}).encode(),
        "inf-time": json.dumps({**GOOD, "started": float("inf")}).encode(), "string-time": patched(submitted="now"),
        "extra-list": patched(extra=[1]), "bad-kind": patched(kind="rm -rf"), "attempts-negative": patched(attempts=-5),
        "batch-zero": patched(batch_size=0),
    }


SIDE_FILES = {  # a good "interrupted" status with one damaged side file
    "pidfile-list": ("worker.pid", b"[1, 2]"), "pidfile-bad-pid": ("worker.pid", b'{"pid": -1}'),
    "pidfile-string-pid": ("worker.pid", b'{"pid": "1", "pid_start": []}'), "config-list": ("config.json", b"[]"),
    "config-binary": ("config.json", bytes(range(256))), "metrics-junk": ("metrics.jsonl", b"[]\n\x00\xff\n{\"epoch\": \"x\"}\n"),
}
CALLS = ("list_jobs", "describe", "status", "resume", "cancel", "read_config", "read_metrics", "eta_seconds", "log")


def state_case(item: dict) -> None:
    """Batch function: one damaged job folder beside a good one; one API call. JobError is a clean refusal; the
    listing must keep the good job and show the damaged one as damaged."""
    from temzoo.train import jobs

    root = Path(item["root"]) / item["name"] / item["call"]
    shutil.rmtree(root, ignore_errors=True)
    good, bad = root / "good", root / "bad"
    good.mkdir(parents=True)
    (good / "status.json").write_text(json.dumps({**GOOD, "dir": str(good)}))
    bad.mkdir()
    if item["name"] in SIDE_FILES:
        (bad / "status.json").write_text(json.dumps({**GOOD, "id": "bad", "name": "bad", "state": "done",
                                                     "dir": str(bad)}))
        fname, raw = SIDE_FILES[item["name"]]
        (bad / fname).write_bytes(raw)
    else:
        (bad / "status.json").write_bytes(status_variants()[item["name"]])
    call = item["call"]
    if call == "list_jobs":
        listed = {Path(s.dir).name: s for s in jobs.list_jobs(root)}
        assert listed["good"].state == "done" and set(listed) == {"good", "bad"}, listed
        if item["name"] not in SIDE_FILES:
            assert listed["bad"].state == jobs.DAMAGED and listed["bad"].error, listed["bad"]
        return
    fn = {"log": jobs.read_log, "cancel": lambda d: jobs.cancel(d, wait_s=0)}.get(call) or getattr(jobs, call)
    fn(bad)


def state_cases(root: Path) -> list[Case]:
    names = list(status_variants()) + list(SIDE_FILES)
    return [Case(f"{n}:{c}", {"root": str(root), "name": n, "call": c}, cls=3)
            for n in names for c in CALLS if not (n in SIDE_FILES and c == "resume")]


ZOO_JUNK = {
    "meta-list": ("temzoo.json", b"[]"), "meta-string": ("temzoo.json", b'"x"'), "meta-null": ("temzoo.json", b"null"),
    "meta-binary": ("temzoo.json", bytes(range(256))), "meta-px-text": ("temzoo.json", b'{"pixel_size_nm": "abc"}'),
    "meta-px-nan": ("temzoo.json", b'{"pixel_size_nm": NaN}'), "meta-px-neg": ("temzoo.json", b'{"pixel_size_nm": -2}'),
    "meta-px-inf": ("temzoo.json", b'{"pixel_size_nm": Infinity}'), "meta-classes": ("temzoo.json", b'{"class_names": 3}'),
    "meta-task": ("temzoo.json", b'{"task": 7}'), "meta-deep": ("temzoo.json", b"[" * 50_000 + b"]" * 50_000),
    "config-list": ("config.json", b"[]"), "config-binary": ("config.json", bytes(range(256))),
    "weights-junk": ("model.safetensors", b"\xff" * 64), "weights-empty": ("model.safetensors", b""),
    "card-binary": ("README.md", bytes(range(256))), "meta-fifo": ("temzoo.json", None),
    "card-fifo": ("README.md", None), "meta-dir": ("temzoo.json", "dir"),
}
# Loading a damaged checkpoint (load_model) is class 8's (temzoo.json / config.json validation on load):
# tests/hostile/test_checkpoints.py.
ZOO_CALLS = ("list", "zoo-list")


def zoo_case(item: dict) -> None:
    """Batch function: one damaged local-zoo folder beside a good one (and a poisoned HF cache entry); one call."""
    import huggingface_hub.constants as hfc

    from temzoo.paths import bundled_zoo_dir

    home = Path(item["root"]) / item["name"] / item["call"]
    shutil.rmtree(home, ignore_errors=True)
    zoo = home / "zoo"
    src = bundled_zoo_dir() / "tem-denoise"
    shutil.copytree(src, zoo / "good")
    shutil.copytree(src, zoo / "bad")
    shutil.copytree(src, zoo / ".bad.temzoo-tmp-999999-aa")  # a killed install's temporary
    fname, raw = ZOO_JUNK[item["name"]]
    target = zoo / "bad" / fname
    target.unlink(missing_ok=True)
    if raw is None:
        os.mkfifo(target)
    elif raw == "dir":
        target.mkdir()
    else:
        target.write_bytes(raw)
    snap = home / "hf" / "models--org--poisoned" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("abc")
    for f in ("config.json", "model.safetensors"):
        shutil.copyfile(src / f, snap / f)
    (snap / "temzoo.json").write_text("[]")
    os.environ["TEMZOO_HOME"] = str(home)
    hfc.HF_HUB_CACHE = str(home / "hf")
    if item["call"] == "list":
        from temzoo.zoo.sources import list_models

        every = {m.id: m for m in list_models(hub=False, include_damaged=True)}
        assert every["good"].damaged is None and not any(k.startswith(".") for k in every), every.keys()
        assert "good" in [m.id for m in list_models(hub=False)]
    else:
        from tests.hostile._run import cli_in_process

        cli_in_process({"argv": ["zoo", "list", "--no-hub", "--json"]})


def zoo_cases(root: Path) -> list[Case]:
    return [Case(f"{n}:{c}", {"root": str(root), "name": n, "call": c}, cls=3) for n in ZOO_JUNK for c in ZOO_CALLS]


@pytest.mark.parametrize("group", batches(state_cases(Path("/nonexistent")), size=150, prefix="jobs"))
def test_corrupt_job_state(group, tmp_path):
    cases = [Case(c.id, {**c.item, "root": str(tmp_path)}, c.cls) for c in group]
    check_batch(STATE_FUNC, cases, "class 3: damaged job folders x job calls", item_timeout=20)


def test_corrupt_zoo_state(tmp_path):
    check_batch(ZOO_FUNC, zoo_cases(tmp_path), "class 3: damaged zoo folders + poisoned HF cache x zoo calls",
                item_timeout=40)


# =============================================================================================== class 4: the lock
def lock_case(item: dict) -> None:
    """Batch function (its own process): resume a job whose lock the test process holds -> JobError."""
    from temzoo.train import jobs

    jobs.resume(item["dir"])


def test_resume_is_refused_while_another_process_holds_the_job(tmp_path):
    import fcntl

    cases = []
    fds = []
    for state in ("failed", "cancelled", "interrupted"):
        d = tmp_path / state
        d.mkdir()
        (d / "status.json").write_text(json.dumps({**GOOD, "id": state, "name": state, "state": state, "dir": str(d)}))
        fd = os.open(d / "job.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        fds.append(fd)
        cases.append(Case(f"locked:{state}", {"dir": str(d)}, cls=4, expect="error", match="already being resumed"))
    try:
        check_batch("tests.hostile.test_paths:lock_case", cases, "class 4: resume of a locked job")
    finally:
        for fd in fds:
            os.close(fd)
