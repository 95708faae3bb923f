"""`python -m temzoo finetune` / `pretrain-denoise`: real runs on tiny sets; the output works as --model and --base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from temzoo.cli import main
from temzoo.zoo import load_model
from tests.trainsets import write_disc_set

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def disc_set(tmp_path_factory):
    return write_disc_set(tmp_path_factory.mktemp("discs"), n=4, size=64)


def test_finetune_cli_subprocess_then_predict(disc_set, tmp_path):
    images, masks = disc_set
    out = tmp_path / "model"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    r = subprocess.run(
        [sys.executable, "-m", "temzoo", "finetune", "--images", str(images), "--masks", str(masks),
         "--base", "scratch", "--strategy", "scratch", "--out", str(out), "--epochs", "1", "--tile-size", "32",
         "--pixel-size-nm", "0.5", "--seed", "1", "--device", "cpu"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["out"] == str(out) and summary["strategy"] == "scratch" and summary["pixel_size_nm"] == 0.5
    assert "fine-tuning" in r.stderr and "100%" in r.stderr  # the progress bar went to stderr
    assert "Traceback" not in r.stderr
    for f in ("config.json", "model.safetensors", "temzoo.json", "README.md", "metrics.jsonl"):
        assert (out / f).is_file(), f
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert not list(tmp_path.glob(".model.work-*"))  # the work folder is cleaned up
    ck = load_model(str(out))
    assert ck.meta.pixel_size_nm == 0.5 and ck.meta.provenance["config"]["seed"] == 1
    # the folder is a --model for predict
    assert main(["predict", str(images / "img0.png"), "--model", str(out), "--out", str(tmp_path / "pred")]) == 0
    assert (tmp_path / "pred" / "img0_mask.png").is_file()


def test_pretrain_denoise_then_finetune_from_it(disc_set, tmp_path, capsys):
    images, masks = disc_set
    den = tmp_path / "den"
    assert main(["pretrain-denoise", "--images", str(images), "--base", "scratch", "--out", str(den),
                 "--epochs", "1", "--tile-size", "32", "--quiet"]) == 0
    assert load_model(str(den)).meta.task == "denoising"
    work = tmp_path / "work"
    assert main(["finetune", "--images", str(images), "--masks", str(masks), "--base", str(den),
                 "--strategy", "freeze-encoder", "--out", str(tmp_path / "ft"), "--epochs", "1",
                 "--tile-size", "32", "--workdir", str(work), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["base"] == str(den) and summary["strategy"] == "freeze-encoder"
    prov = load_model(str(tmp_path / "ft")).meta.provenance
    assert prov["lineage"][-1]["task"] == "denoising" and "reinitialised" in prov["head_reinitialised"]
    cites = (tmp_path / "ft" / "README.md").read_text().split("## Citation")[1]  # its lineage's papers only (#14.5)
    assert "Kazimi" in cites and "U-Net" in cites and "Rangel DaCosta" not in cites
    assert (work / "last" / "state.json").is_file()  # --workdir keeps the resume state
    # --resume picks it up (already finished: one more epoch under a larger budget)
    assert main(["finetune", "--images", str(images), "--masks", str(masks), "--base", str(den),
                 "--strategy", "freeze-encoder", "--out", str(tmp_path / "ft"), "--epochs", "2",
                 "--tile-size", "32", "--workdir", str(work), "--resume", "--quiet"]) == 0
    assert len((tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("argv,match", [
    (["--masks", "{tmp}/none"], "labels"),
    (["--base", "{tmp}/nomodel"], "unknown model"),
    (["--epochs", "0"], "argument --epochs: must be in [1, 100000]"),
    (["--tile-size", "4"], "argument --tile-size: must be in [16, 8192]"),
    (["--resume"], "--resume needs --workdir"),
    (["--strategy", "l2sp"], "needs a pretrained base, not scratch"),  # #14.4: the registry refuses it
    (["--strategy", "freeze-encoder"], "needs a pretrained base, not scratch"),
])
def test_finetune_errors_are_one_line(disc_set, tmp_path, capsys, argv, match):
    images, masks = disc_set
    args = {"--images": str(images), "--masks": str(masks), "--base": "scratch", "--strategy": "full",
            "--out": str(tmp_path / "o"), "--epochs": "1"}
    extra = [a.format(tmp=tmp_path) for a in argv]
    flags = [x for k, v in args.items() if k not in extra for x in (k, v)]
    try:
        rc = main(["finetune", *flags, *extra])
    except SystemExit as exit_:  # argparse refuses an out-of-range number as a usage error (exit 2)
        rc = exit_.code
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and match in err[0], err


def test_finetune_epochs_and_minutes_are_exclusive(disc_set, capsys):
    images, masks = disc_set
    with pytest.raises(SystemExit) as e:
        main(["finetune", "--images", str(images), "--masks", str(masks), "--base", "scratch", "--strategy", "full",
              "--out", "x", "--epochs", "1", "--minutes", "1"])
    assert e.value.code == 2 and capsys.readouterr().err.startswith("error:")


def test_finetune_validation_regions_trains_on_every_image(disc_set, tmp_path, capsys):
    images, masks = disc_set
    rc = main(["finetune", "--images", str(images), "--masks", str(masks), "--base", "scratch", "--strategy",
               "scratch", "--out", str(tmp_path / "m"), "--epochs", "1", "--tile-size", "32", "--validation",
               "regions", "--quiet", "--device", "cpu"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["split"].startswith("every image trains")
    prov = load_model(str(tmp_path / "m")).meta.provenance
    assert len(prov["train_images"]) == 4 and prov["config"]["validation"] == "regions"
