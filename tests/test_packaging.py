"""temzoo installs as a package: a wheel built from the checkout, installed into a fresh venv, runs from anywhere.

The fresh venv gets the CI venv's site-packages through a ``.pth`` file (torch & co. are not reinstalled) and the
wheel with ``--no-deps``; the commands run from a folder outside the checkout with no PYTHONPATH, so the temzoo
they import can only be the installed one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def _pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if m := re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line):
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_pyproject_dependencies_match_requirements():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    req = _pins((REPO / "requirements.txt").read_text().splitlines())
    declared = _pins(project["dependencies"] + [d for ds in project["optional-dependencies"].values() for d in ds])
    assert declared == req, "pyproject.toml and requirements.txt pin different versions"
    assert "streamlit" in _pins(project["optional-dependencies"]["app"])  # the app is an extra, the library is not
    assert "streamlit" not in _pins(project["dependencies"])
    assert project["scripts"]["temzoo"] == "temzoo.cli:main"
    assert "-e ." in (REPO / "requirements.txt").read_text().splitlines()  # README's first line installs temzoo


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """A fresh venv holding the wheel of this checkout; returns (its bin folder, a clean environment)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # build from a copy: setuptools writes build/ and *.egg-info beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "temzoo", src / "temzoo", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
                   check=True, env=env, cwd=tmp, timeout=180)
    wheel = next((tmp / "dist").glob("temzoo-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env, timeout=120)
    vpy = venv / "bin" / "python"
    site = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=env).stdout.strip()
    # The CI venv's packages (torch, smp, ...) without reinstalling them: what --system-site-packages would give.
    (Path(site) / "ci_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(pip + ["--python", str(vpy), "install", "--no-deps", str(wheel)], check=True, env=env,
                   cwd=tmp, timeout=180)
    return venv / "bin", dict(env, HF_HUB_OFFLINE="1")


def test_wheel_installs_and_runs_outside_the_checkout(installed, tmp_path):
    bindir, env = installed
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run([str(bindir / "python"), "-c", "import temzoo, temzoo.paths as p; "
                            "print(temzoo.__file__); print(p.bundled_zoo_dir())"],
                           cwd=outside, env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    module, bundled = where.splitlines()
    assert Path(module).is_relative_to(bindir.parent) and not Path(module).is_relative_to(REPO), module
    assert (Path(bundled) / "hrtem-nanoparticle" / "model.safetensors").is_file()  # package data shipped

    listed = subprocess.run([str(bindir / "temzoo"), "zoo", "list"], cwd=outside, env=env, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "hrtem-nanoparticle" in listed.stdout and "bundled" in listed.stdout

    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((96, 96)) * 255).astype(np.uint8)).save(outside / "tiny.png")
    pred = subprocess.run([str(bindir / "temzoo"), "predict", "tiny.png", "--model", "hrtem-nanoparticle",
                           "--out", "result", "--pixel-size-nm", "0.05"], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=180)
    assert pred.returncode == 0, pred.stderr
    assert any(p.suffix == ".tif" for p in (outside / "result").iterdir()), sorted((outside / "result").iterdir())

    bad = subprocess.run([str(bindir / "temzoo"), "predict", "missing.png", "--model", "hrtem-nanoparticle",
                          "--out", "r2"], cwd=outside, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_no_checkout_assumptions():
    """Scripts import the installed temzoo (no sys.path inserts); the library never locates the repository and
    does not hand job workers a PYTHONPATH."""
    scripts = sorted((REPO / "bench").glob("*.py")) + sorted((REPO / "scripts").rglob("*.py"))
    assert scripts and not [p.name for p in scripts if "sys.path.insert" in p.read_text()]
    lib = {p: p.read_text() for p in (REPO / "temzoo").rglob("*.py")}
    assert not [p.name for p, s in lib.items() if "REPO_ROOT" in s]
    assert "PYTHONPATH" not in lib[REPO / "temzoo" / "train" / "jobs.py"]
