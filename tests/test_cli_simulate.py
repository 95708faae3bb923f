"""`python -m temzoo simulate` end to end in a subprocess (the real CLI, a tiny cell)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TEMZOO_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "temzoo", "simulate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_simulate_writes_images_masks_metadata(tmp_path):
    out = tmp_path / "sim"
    args = ["--out", str(out), "--n", "3", "--size", "96", "--material", "Pt,CdSe", "--dose", "50,500",
            "--defocus=-20:20", "--seed", "4", "--pixel-size-nm", "0.05", "--diameter-nm", "2:2.5",
            "--carbon-nm", "2:2", "--particles", "1:1", "--variants", "3", "--format", "png", "--clean"]
    r = run_cli(*args, home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["n_images"] == 3 and summary["exit_waves_computed"] == 1
    assert "simulate" in r.stderr  # tqdm progress bar
    for k in range(3):
        img = np.array(Image.open(out / "images" / f"{k:05d}.png"))
        mask = np.array(Image.open(out / "masks" / f"{k:05d}.png"))
        assert img.dtype == np.uint16 and img.shape == (96, 96)
        assert set(np.unique(mask)) <= {0, 255} and mask.any()
        meta = json.loads((out / "metadata" / f"{k:05d}.json").read_text())
        assert meta["dose_e_per_A2"] in (50.0, 500.0) and -20 <= meta["defocus_nm"] <= 20
        assert set(meta["materials"]) <= {"Pt", "CdSe"} and meta["seed"] == 4
        assert (out / "clean" / f"{k:05d}.png").exists()
    # the default cache lives under TEMZOO_HOME; a rerun reuses it
    assert list((tmp_path / "home/cache/exitwaves").glob("*.npz"))
    r2 = run_cli(*args[:1], str(tmp_path / "sim2"), *args[2:], "--quiet", home=tmp_path / "home")
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout.strip().splitlines()[-1])["exit_waves_cached"] == 1
    assert (out / "images/00002.png").read_bytes() == (tmp_path / "sim2/images/00002.png").read_bytes()


def test_simulate_bad_input_is_one_error_line(tmp_path):
    for bad in (["--material", "Kryptonite"], ["--dose", "lots"], ["--n", "0"], ["--pixel-size-nm", "3"]):
        r = run_cli("--out", str(tmp_path / "x"), "--n", "1", *bad, home=tmp_path)
        assert r.returncode == 2, (bad, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (bad, r.stderr)
