"""``python -m temzoo inspect``: the contract in ARCHITECTURE.md, through real subprocesses and over every shared file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from temzoo.cli import main
from tests.conftest import REPO
from tests.test_io_matrix import EXPECTED


def _inspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "temzoo", "inspect", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_json_multi_signal(shared_data):
    proc = _inspect(str(shared_data / "dm/rosettasciio/2D/multi_signal.dm3"), "--json")
    assert proc.returncode == 0, proc.stderr
    objs = json.loads(proc.stdout)
    assert len(objs) == 1  # the 1D "Plot" beside the image is not a real-space image
    obj = objs[0]
    for key in ("index", "title", "shape", "dtype", "pixel_size_nm", "calibrated", "frames"):
        assert key in obj
    assert obj["index"] == 0 and obj["title"] == "HAADF" and obj["shape"] == [512, 512]
    assert obj["dtype"] == "uint16" and obj["frames"] == 1 and obj["calibrated"] is True
    assert obj["pixel_size_nm"] == pytest.approx(0.017751578, rel=1e-6)
    assert obj["voltage_kv"] == 300.0 and obj["microscope"] == "Example Microscope"
    assert proc.stderr == ""


def test_table_jeol(shared_data):
    proc = _inspect(str(shared_data / "dm/particlespy/JEOL HAADF Image.dm4"))
    assert proc.returncode == 0, proc.stderr
    assert "1.25 nm/px" in proc.stdout and "112x112" in proc.stdout and "80 kV" in proc.stdout
    assert proc.stderr == ""


def test_no_real_space_image_exits_2(shared_data):
    # one real process here; spectra-only and complex-FFT files are checked in-process in the per-file test below
    proc = _inspect(str(shared_data / "dm/rosettasciio/2D/test_diffraction_pattern.dm3"), "--json")
    fragment = "reciprocal-space"
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]


def test_missing_file_and_usage_errors(tmp_path):
    proc = _inspect(str(tmp_path / "nope.dm4"))
    assert proc.returncode == 2 and proc.stderr.splitlines() == [f"error: no such file: {tmp_path / 'nope.dm4'}"]
    proc = _inspect()
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error:")


def test_help_does_not_import_readers():
    # --help must stay instant: building the parser may not pull in HyperSpy, dask or PIL
    code = ("import sys, temzoo.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('hyperspy', 'rsciio', 'dask', 'PIL', 'plotly') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    proc = _inspect("--help")
    assert proc.returncode == 0 and "--json" in proc.stdout


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_inspect_every_shared_file(shared_data, rel, capsys):
    """In-process (same code path as the subprocess, minus interpreter start-up) so all files stay fast."""
    rc = main(["inspect", str(shared_data / rel), "--json"])
    out, err = capsys.readouterr()
    exp = EXPECTED[rel]
    if exp["ok"]:
        assert rc == 0 and err == ""
        obj = json.loads(out)[0]
        assert obj["frames"] == exp["frames"] and tuple(obj["shape"]) == exp["shape"]
        assert obj["dtype"] == exp["dtype"]
        if exp["px"] is None:
            assert obj["pixel_size_nm"] is None
        else:
            assert obj["pixel_size_nm"] == pytest.approx(exp["px"], rel=1e-5)
    else:
        assert rc == 2 and out == ""
        assert len(err.splitlines()) == 1 and err.startswith("error: ")
        assert all(f in err for f in exp["fragments"])
