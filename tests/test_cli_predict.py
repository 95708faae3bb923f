"""``python -m temzoo predict`` / ``evaluate``: the files and keys of the ARCHITECTURE.md contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from temzoo.cli import main

REPO = Path(__file__).resolve().parent.parent
SUMMARY_KEYS = {"model", "pixel_size_nm", "resampled_to_nm", "shape", "seconds", "mean_confidence",
                "foreground_fraction", "n_objects"}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "temzoo", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def _check_outputs(out: Path, shape: tuple[int, int], name: str) -> dict:
    mask = np.asarray(Image.open(out / f"{name}_mask.png"))
    assert mask.shape == shape and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(tifffile.imread(out / f"{name}_mask.tif"), mask // 255)
    for kind in ("probability", "confidence"):
        a = tifffile.imread(out / f"{name}_{kind}.tif")
        assert a.dtype == np.float32 and a.shape == shape and 0 <= a.min() and a.max() <= 1
    assert np.asarray(Image.open(out / f"{name}_overlay.png")).shape == (*shape, 3)
    assert (out / f"{name}.hspy").is_file()
    summary = json.loads((out / f"{name}_summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["shape"] == list(shape)
    lines = (out / f"{name}_particles.csv").read_text().splitlines()
    assert lines[0].startswith("id,") and len(lines) - 1 == summary["n_objects"]
    return summary


def test_predict_real_dm3_with_explain(tiny_checkpoint, shared_data, tmp_path):
    out = tmp_path / "out"
    r = _run("predict", str(shared_data / "dm/rosettasciio/2D/multi_signal.dm3"), "--model", str(tiny_checkpoint),
             "--out", str(out), "--explain", "gradcam")
    assert r.returncode == 0, r.stderr
    s = _check_outputs(out, (512, 512), "multi_signal")
    assert s["pixel_size_nm"] == pytest.approx(0.01775, rel=1e-3) and s["resampled_to_nm"] == 0.05
    imp = tifffile.imread(out / "multi_signal_importance.tif")
    assert imp.dtype == np.float32 and imp.shape == (512, 512) and np.abs(imp).max() > 0
    assert s["explain"]["method"] == "gradcam"


def test_predict_png_tta_mc_in_process(tiny_checkpoint, tmp_path, capsys):
    img = (np.random.default_rng(0).random((40, 56)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    out = tmp_path / "o"
    rc = main(["predict", str(tmp_path / "a.png"), "--model", str(tiny_checkpoint), "--out", str(out), "--tta",
               "--mc-dropout", "2"])
    assert rc == 0
    s = _check_outputs(out, (40, 56), "a")
    assert s["pixel_size_nm"] is None and s["resampled_to_nm"] == 0.05
    assert "tta_mc_spread" in s["maps"] and "mc_mutual_information" in s["maps"]
    assert "uncalibrated" in capsys.readouterr().err


def test_errors_are_one_line_exit_2(tiny_checkpoint, tmp_path):
    r = _run("predict", str(tmp_path / "missing.dm3"), "--model", str(tiny_checkpoint), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_evaluate_json(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "im").mkdir()
    (tmp_path / "mk").mkdir()
    rng = np.random.default_rng(1)
    for name in ("x", "y"):
        Image.fromarray((rng.random((48, 48)) * 255).astype(np.uint8)).save(tmp_path / "im" / f"{name}.png")
        m = np.zeros((48, 48), np.uint8)
        m[10:30, 10:30] = 255
        Image.fromarray(m).save(tmp_path / "mk" / f"{name}.png")
    rc = main(["evaluate", "--model", str(tiny_checkpoint), "--images", str(tmp_path / "im"), "--masks",
               str(tmp_path / "mk"), "--pixel-size-nm", "0.05", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    for k in ("f1", "iou", "dice", "precision", "recall", "object_f1", "count_error", "ece", "n_images"):
        assert k in res
    assert res["n_images"] == 2
    rc = main(["evaluate", "--model", str(tiny_checkpoint), "--images", str(tmp_path / "im"), "--masks",
               str(tmp_path / "nope")])
    assert rc == 2 and "masks folder" in capsys.readouterr().err
