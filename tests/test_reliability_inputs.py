"""Issue #12, classes 5 (absurd numbers) and 6 (file names, error lines): one regression test each for what main
got wrong (each FAILED on main at 4613155, checked by running this file in an export of main; the bulk of these
classes is generated in tests/hostile/test_inputs.py)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from temzoo.errors import TemzooError

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "temzoo", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd or REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    lines = r.stderr.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr and "unexpected failure" not in r.stderr, r.stderr
    return lines[0]


def test_class5_config_refuses_non_finite_and_out_of_range():
    """main accepted --downsample inf, --lr 1e300, seed -1 / 2**64 in TrainConfig and a NaN cs in SimulationConfig."""
    from temzoo.simulate.dataset import SimulationConfig
    from temzoo.train.config import TrainConfig

    for field, value in (("downsample", math.inf), ("downsample", 1e300), ("lr", 1e300), ("lr", math.nan),
                         ("seed", -1), ("seed", 2**64), ("pixel_size_nm", math.nan), ("minutes", math.inf)):
        with pytest.raises(TemzooError):
            TrainConfig(images="i", masks="m", **{field: value}).validate()
    for field, value in (("cs_mm", math.inf), ("energy_kv", 0), ("blur_px", -1.0), ("n_particles", (0, 0)),
                         ("diameter_nm", (0.0, 0.0)), ("carbon_nm", (-1.0, 2.0)), ("label_threshold_rad", math.nan)):
        with pytest.raises(TemzooError):
            SimulationConfig(**{field: value}).validate()


def test_class5_cli_names_the_option_and_range(tmp_path):
    """main answered `--particles 0:0` with whatever check came next (here: the unknown material)."""
    line = one_error_line(cli("simulate", "--out", str(tmp_path / "o"), "--n", "1", "--particles", "0:0",
                              "--material", "Unobtainium"))
    assert "--particles" in line and "[1, 1000]" in line, line
    line = one_error_line(cli("predict", "x.dm3", "--model", "m", "--out", str(tmp_path / "p"),
                              "--mc-dropout", "99999999999"))
    assert "--mc-dropout" in line and "1000" in line, line
    assert not (tmp_path / "o").exists() and not (tmp_path / "p").exists()


def test_class5_sidecar_pixel_size_nan_refused(tmp_path):
    """main read a NaN pixel size from the Label page's labelset.json and carried it into training."""
    from temzoo.labelled import sidecar_pixel_sizes

    (tmp_path / "images").mkdir()
    for bad in ("NaN", "-1", "Infinity", '"abc"'):
        (tmp_path / "labelset.json").write_text('{"items": {"a": {"pixel_size_nm": %s}}}' % bad)
        with pytest.raises(TemzooError, match="labelset.json"):
            sidecar_pixel_sizes(tmp_path / "images")
    (tmp_path / "labelset.json").write_text(json.dumps({"items": {"a": {"pixel_size_nm": 0.25}}}))
    assert sidecar_pixel_sizes(tmp_path / "images") == {"a": 0.25}


def test_class6_newline_in_a_path_prints_one_escaped_line(tmp_path):
    """main printed the name with its newline turned into a space (a different, misleading name)."""
    line = one_error_line(cli("inspect", str(tmp_path / "missing\nname.dm3")))
    assert "missing\\nname.dm3" in line, line
    line = one_error_line(cli("predict", "a\nb.dm3", "--model", "m", "--out", "o", "--bogus\x1b[31m"))
    assert "\x1b" not in line and "\\x1b" in line, line


def test_class6_dash_name_refused_with_how_to_pass_it(tmp_path, shared_data):
    """main said only 'the following arguments are required: PATH' for `inspect -x.dm3`."""
    shutil.copy(shared_data / "dm" / "rosettasciio" / "2D" / "test-1.dm3", tmp_path / "-x.dm3")
    line = one_error_line(cli("inspect", "-x.dm3", cwd=tmp_path))
    assert "'-x.dm3'" in line and "-- -x.dm3" in line and "./-x.dm3" in line, line
    ok = cli("inspect", "--", "-x.dm3", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "./-name.dm4" in cli("inspect", "--help").stdout
