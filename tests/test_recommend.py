"""Recommendation by evidence: recommend_base reads bench_transfer's summary and says why; finetune --base auto."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.bench_transfer import evidence
from temzoo.zoo import registry as reg


def _rows(target, n, means):
    return [{"target": target, "validation": "regions", "n_labelled": n, "base": b, "seed": s, "f1": m + 0.01 * s,
             "minutes": 0.4} for b, m in means.items() for s in range(3)]


@pytest.fixture()
def files(tmp_path):
    rows = (_rows("steel-dislocation-loops", 2, {"scratch": 0.5, "generalist": 0.6, "tem-denoise": 0.55})
            + _rows("steel-dislocation-loops", 4, {"scratch": 0.6, "generalist": 0.62})
            + _rows("uo2-grain-boundaries", 4, {"scratch": 0.7, "generalist": 0.68})
            + _rows("sim", 2, {"scratch": 0.4, "generalist": 0.5}))
    ev = tmp_path / "evidence.json"
    ev.write_text(json.dumps(evidence(rows, {"minutes_cpu_per_run": 0.4, "seeds": [0, 1, 2]}, "regions")))
    registry = tmp_path / "registry.yaml"
    registry.write_text("entries:\n  - id: hrtem-nanoparticle\n    pixel_size_nm: 0.05\n  - id: generalist-tem\n"
                        "  - id: tem-denoise\n    task: denoising\n")
    return registry, ev


def test_the_winner_for_this_kind_of_image_and_why(files, tmp_path):
    registry, ev = files
    rec = reg.recommend_base(0.39, 2, registry, ev)  # steel-like bright-field at 0.39 nm/px, 2 labels
    assert rec.base == "generalist-tem"  # the family tested held out maps to its shipped member
    assert "steel-dislocation-loops" in rec.reason and "+0.100" in rec.reason and "held out" in rec.reason
    assert reg.recommend_base(0.5, 3, registry, ev).reason.count("with 4 labelled") == 1  # nearest size, ties up
    un = reg.recommend_base(None, 4, registry, ev)  # uncalibrated: the uncalibrated BF target (UO2) says scratch
    assert un.base == "scratch" and "no zoo base beat scratch" in un.reason
    assert reg.recommend_base(0.05, 2, registry, ev).base == "hrtem-nanoparticle"  # the default base's own scale
    assert reg.recommend_base(0.01, 2, registry, ev).base == "generalist-tem"  # HRTEM, not at the default's scale
    # a winner the zoo does not have falls to the next measured base that it does
    only = tmp_path / "only.yaml"
    only.write_text("entries:\n  - id: hrtem-nanoparticle\n    pixel_size_nm: 0.05\n  - id: tem-denoise\n"
                    "    task: denoising\n")
    assert reg.recommend_base(0.39, 2, only, ev).base == "tem-denoise"
    none = reg.recommend_base(0.39, 2, registry, tmp_path / "absent.json")
    assert none.base == "scratch" and "no transfer measurement" in none.reason


def test_finetune_base_auto_prints_its_choice(tmp_path):
    from tests.trainsets import write_disc_set

    images, masks = write_disc_set(tmp_path / "set", n=2, size=48)
    expected = reg.recommend_base(None, 2)
    out = subprocess.run([sys.executable, "-m", "temzoo", "finetune", "--images", str(images), "--masks", str(masks),
                          "--base", "auto", "--strategy", "full", "--out", str(tmp_path / "m"), "--epochs", "1",
                          "--tile-size", "32", "--batch-size", "2", "--quiet"],
                         capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                          "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    assert f"base auto: {expected.base}, because {expected.reason}" in out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["base"] == (None if expected.base == "scratch" else expected.base)
