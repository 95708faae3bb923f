"""scripts/recipes/generalist.py --init: a later pretraining stage continues only a base that held out the same
target (continuing another would show the target to the base), and says so in one line before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "scripts" / "recipes" / "generalist.py"


def _recipe(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(RECIPE), *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_a_stage_continues_only_the_same_hold_out(tmp_path):
    stage = tmp_path / "generalist-minus-uo2"
    stage.mkdir()
    (stage / "temzoo.json").write_text(json.dumps({"provenance": {"held_out": "uo2-grain-boundaries",
                                                                  "pretrain_cpu_minutes": 8}}))
    work = tmp_path / "work"
    r = _recipe("--hold-out", "steel-dislocation-loops", "--init", str(stage), "--work", str(work))
    assert r.returncode != 0
    err = r.stderr.strip().splitlines()
    assert err[-1].startswith("error: --init") and "held out 'uo2-grain-boundaries', not 'steel" in err[-1]
    assert "Traceback" not in r.stderr
    assert not (work / "set-minus-steel").exists()  # refused before the training set was written

    r = _recipe("--hold-out", "uo2-grain-boundaries", "--init", str(tmp_path / "nowhere"), "--work", str(work))
    assert r.returncode != 0 and "is not a model folder" in r.stderr and "Traceback" not in r.stderr
