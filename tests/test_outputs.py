"""Class 1 of issue #12: no command deletes or overwrites what it did not create (temzoo.io.outputs).

Every command that writes a folder (finetune, pretrain-denoise, predict, batch predict, simulate) is pointed at the
folders users reported losing: a folder of their own files, the --images folder, the masks folder, the labelled-set
folder, a model already in the local zoo, a bundled model folder. Each is refused with exactly one ``error:`` line and
every file under the test folder and the bundled zoo is byte-identical afterwards (sha256 snapshots).

Fails on today's main (checked with ``PYTHONPATH=/work/main``): ``test_finetune_into_a_folder_of_user_files_keeps_them``
(main trains, then replaces the folder: thesis.docx is gone) and the refusal matrix (main accepts most cases).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from temzoo.cli import main
from temzoo.paths import bundled_zoo_dir, local_zoo_dir
from tests.labelled_sets import make_disk_set

REPO = Path(__file__).resolve().parent.parent


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (symlinks by target text): equal snapshots mean nothing was lost."""
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if p.is_symlink():
                out[str(p)] = "link:" + os.readlink(p)
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture()
def world(tmp_path, tiny_checkpoint):
    """A labelled set, a folder of the user's files, a model in the local zoo."""
    labels = make_disk_set(tmp_path / "labels", n=4, size=64)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_bytes(b"precious " * 100)
    (mine / "notes").mkdir()
    (mine / "notes" / "a.txt").write_text("more")
    zoo = local_zoo_dir()
    zoo.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tiny_checkpoint, zoo / "mine-v1")
    return {"labels": labels, "mine": mine, "zoo_model": zoo / "mine-v1", "ckpt": tiny_checkpoint}


def _argv(cmd: str, w: dict, out: Path) -> list[str]:
    images, masks = w["labels"] / "images", w["labels"] / "masks"
    first = sorted(images.iterdir())[0]
    train = ["--epochs", "1", "--tile-size", "32", "--quiet", "--device", "cpu"]
    return {
        "finetune": ["finetune", "--images", str(images), "--masks", str(masks), "--base", "scratch",
                     "--strategy", "scratch", "--out", str(out), *train],
        "pretrain-denoise": ["pretrain-denoise", "--images", str(images), "--out", str(out), *train],
        "predict": ["predict", str(first), "--model", str(w["ckpt"]), "--out", str(out), "--threads", "1"],
        "batch": ["predict", str(images), "--model", str(w["ckpt"]), "--out", str(out), "--threads", "1"],
        "simulate": ["simulate", "--n", "1", "--size", "64", "--out", str(out), "--quiet"],
    }[cmd]


CASES = ("user-files", "images", "masks", "labelled-set", "local-zoo-model", "bundled-model", "bundled-root", "file")


def _target(case: str, w: dict) -> Path:
    return {
        "user-files": w["mine"], "images": w["labels"] / "images", "masks": w["labels"] / "masks",
        "labelled-set": w["labels"], "local-zoo-model": w["zoo_model"],
        "bundled-model": bundled_zoo_dir() / "hrtem-nanoparticle", "bundled-root": bundled_zoo_dir() / "new-model",
        "file": w["mine"] / "thesis.docx",
    }[case]


@pytest.mark.parametrize("cmd", ["finetune", "pretrain-denoise", "predict", "batch", "simulate"])
def test_every_command_refuses_every_reported_folder(cmd, world, tmp_path, capsys):
    """5 commands x 8 folders: exit 2, one ``error:`` line, nothing changed (also with --overwrite)."""
    roots = (tmp_path, bundled_zoo_dir(), local_zoo_dir())
    for case in CASES:
        for extra in ([], ["--overwrite"]):
            if cmd == "batch" and extra:
                continue  # a batch resumes; --overwrite is the single-image bundle's
            before = snapshot(*roots)
            rc = main(_argv(cmd, world, _target(case, world)) + extra)
            err = capsys.readouterr().err.strip().splitlines()
            assert rc == 2, (cmd, case, extra, err)
            assert len(err) == 1 and err[0].startswith("error: --out "), (cmd, case, err)
            assert snapshot(*roots) == before, (cmd, case, extra)
    assert not (bundled_zoo_dir() / "new-model").exists()


def test_finetune_into_a_folder_of_user_files_keeps_them(world, tmp_path, capsys):
    """The reported loss: ``finetune --out <folder of the user's files>``. Fails on main (the folder is replaced)."""
    before = snapshot(world["mine"])
    rc = main(_argv("finetune", world, world["mine"]))
    assert rc == 2
    assert "temzoo did not make it" in capsys.readouterr().err
    assert snapshot(world["mine"]) == before


def test_overwrite_replaces_only_a_temzoo_output_of_the_same_kind(world, tmp_path, capsys):
    """A real fine-tune, then: again without --overwrite (refused), with it (replaced), after the user dropped a file
    in (refused: the file is kept), and predict into the model folder (another kind: refused)."""
    from temzoo.io import outputs

    out = tmp_path / "model"
    assert main(_argv("finetune", world, out)) == 0
    assert outputs.read_marker(out)["kind"] == "model"
    first = snapshot(out)
    assert main(_argv("finetune", world, out)) == 2
    assert "add --overwrite" in capsys.readouterr().err and snapshot(out) == first
    assert main(_argv("finetune", world, out) + ["--seed", "3", "--overwrite"]) == 0
    assert snapshot(out) != first and (out / "model.safetensors").is_file()
    (out / "my-notes.txt").write_text("mine")
    kept = snapshot(out)
    assert main(_argv("finetune", world, out) + ["--overwrite"]) == 2
    assert "did not write (my-notes.txt)" in capsys.readouterr().err and snapshot(out) == kept
    assert main(_argv("predict", world, out)) == 2
    assert "holds a temzoo model output" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if ".temzoo-" in p.name]  # no temporaries left


def test_predict_adds_bundles_and_needs_overwrite_for_its_own(world, tmp_path, capsys):
    out = tmp_path / "pred"
    images = sorted((world["labels"] / "images").iterdir())
    assert main(_argv("predict", world, out)) == 0
    argv2 = ["predict", str(images[1]), "--model", str(world["ckpt"]), "--out", str(out), "--threads", "1"]
    assert main(argv2) == 0  # another image: its files are added beside the first
    names = {p.name for p in out.iterdir()}
    assert any(n.startswith(images[0].stem) for n in names) and any(n.startswith(images[1].stem) for n in names)
    before = snapshot(out)
    assert main(argv2) == 2 and "add --overwrite" in capsys.readouterr().err
    assert snapshot(out) == before
    assert main(argv2 + ["--overwrite"]) == 0


def test_killed_cli_finetune_leaves_no_work_folder_behind(world, tmp_path):
    """SIGKILL a real ``python -m temzoo finetune`` while it trains: its hidden work folder (checkpoint-sized) is
    removed by the next run for the same --out; the output never appears half-written."""
    out = tmp_path / "model"
    argv = _argv("finetune", world, out)
    argv[argv.index("--epochs") + 1] = "200"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "temzoo", *argv], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            work = [p for p in tmp_path.iterdir() if ".temzoo-work-" in p.name]
            if work and (work[0] / "last").is_dir():
                break
            time.sleep(0.1)
        else:
            pytest.fail("the fine-tune never wrote its first resume state")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert work[0].is_dir() and not out.exists()
    assert main(_argv("finetune", world, out)) == 0
    assert not work[0].exists() and (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if ".temzoo-" in p.name]


def test_a_swap_cut_between_its_renames_is_undone(tmp_path):
    """The previous output parked by a killed process (dead pid) is put back; a live owner's files are left."""
    from temzoo.io import outputs

    final = tmp_path / "out"
    parked = tmp_path / f".out{outputs.OLD_TAG}999999"
    parked.mkdir()
    (parked / "a.txt").write_text("previous")
    live = tmp_path / f".out{outputs.TMP_TAG}{os.getpid()}-ab"
    live.mkdir()
    outputs.recover(final)
    assert (final / "a.txt").read_text() == "previous" and not parked.exists() and live.is_dir()


def test_save_checkpoint_refuses_a_folder_of_other_files(tmp_path, tiny_checkpoint):
    from temzoo.errors import ModelError
    from temzoo.zoo.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(tiny_checkpoint)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.csv").write_text("1,2")
    with pytest.raises(ModelError, match="not a checkpoint"):
        save_checkpoint(ck.model, tmp_path / "mine", ck.meta)
    assert (tmp_path / "mine" / "data.csv").read_text() == "1,2"
