"""scripts/recipes/generalist.py --init: a later pretraining stage continues only a base that held out the same
target (continuing another would show the target to the base), and says so in one line before any work."""

from __future__ import annotations

import json
import subprocess

from tests.recipes import run_recipe


def _recipe(*args: str) -> subprocess.CompletedProcess:
    return run_recipe("generalist", *args, timeout=120)


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

    r = _recipe("--hold-out", "uo2-grain-boundaries", "--init", str(stage), "--out", str(stage), "--work", str(work))
    assert r.returncode != 0 and "give a new --out" in r.stderr and "Traceback" not in r.stderr
    assert json.loads((stage / "temzoo.json").read_text())["provenance"]["pretrain_cpu_minutes"] == 8  # untouched

    r = _recipe("--hold-out", "uo2-grain-boundaries", "--init", str(tmp_path / "nowhere"), "--work", str(work))
    assert r.returncode != 0 and "is not a model folder" in r.stderr and "Traceback" not in r.stderr

    # Hand-edited stages: broken JSON, a provenance that is not an object, budgets the card could not add up.
    for text, says in (("[1, 2", "temzoo.json"), ('{"provenance": [1]}', "provenance"),
                       ('{"provenance": {"held_out": "uo2-grain-boundaries", "pretrain_cpu_minutes": "8"}}',
                        "pretrain_cpu_minutes '8'"),
                       ('{"provenance": {"held_out": "uo2-grain-boundaries", "pretrain_stages": 0}}',
                        "pretrain_stages 0")):
        (stage / "temzoo.json").write_text(text)
        r = _recipe("--hold-out", "uo2-grain-boundaries", "--init", str(stage), "--work", str(work))
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode != 0 and last.startswith("error: --init") and says in last, r.stderr
        assert "Traceback" not in r.stderr
    assert not (work / "set-minus-uo2").exists()


def test_stage1_takes_only_a_self_supervised_base_that_never_saw_the_target(tmp_path):
    """--stage1 starts from another self-supervised base (masked reconstruction): refused for a segmentation folder,
    for a base that would show simulated fields to a sim-held-out generalist, and next to --init."""
    seg = tmp_path / "seg"
    seg.mkdir()
    (seg / "temzoo.json").write_text(json.dumps({"task": "segmentation", "provenance": {}}))
    den = tmp_path / "masked"
    den.mkdir()
    (den / "temzoo.json").write_text(json.dumps({"task": "denoising", "provenance": {}}))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "temzoo.json").write_text("[1, 2")
    work = tmp_path / "work"
    for args, says in ((("--hold-out", "uo2-grain-boundaries", "--stage1", str(seg)), "not a self-supervised base"),
                       (("--hold-out", "uo2-grain-boundaries", "--stage1", str(broken)), "not a self-supervised base"),
                       (("--hold-out", "uo2-grain-boundaries", "--stage1", str(tmp_path / "nowhere")),
                        "not a self-supervised base"),
                       (("--hold-out", "sim", "--stage1", str(den)), "cannot start a base that holds out sim"),
                       (("--hold-out", "uo2-grain-boundaries", "--stage1", str(den), "--init", str(seg)),
                        "Give one of them")):
        r = _recipe(*args, "--work", str(work))
        assert r.returncode != 0 and says in r.stderr.strip().splitlines()[-1], r.stderr
        assert "Traceback" not in r.stderr
        assert not any(work.glob("set-minus-*"))  # refused before the training set was written
