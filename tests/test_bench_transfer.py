"""bench/bench_transfer.py: leave-one-set-out draws, a real (tiny) run end to end, the table and the evidence file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import bench_transfer as bt

REPO = Path(__file__).resolve().parent.parent


def test_each_seed_draws_its_own_nested_images():
    pool = list(range(10))
    assert bt.draw(pool, 1, 0) == bt.draw(pool, 2, 0)[:1] and bt.draw(pool, 2, 0) == bt.draw(pool, 4, 0)[:2]
    assert len({tuple(bt.draw(pool, 4, s)) for s in range(3)}) == 3


def test_a_base_never_sees_its_target(tmp_path):
    assert bt.base_folder("hrtem-nanoparticle", "sim", tmp_path) is None  # trained on simulated HRTEM: skipped
    assert bt.base_folder("uo2-grain-boundaries", "uo2-grain-boundaries", tmp_path) is None
    assert bt.base_folder("uo2-grain-boundaries", "sim", tmp_path).endswith("zoo/bundled/uo2-grain-boundaries")
    (tmp_path / "generalist-minus-steel").mkdir()
    (tmp_path / "generalist-minus-steel" / "model.safetensors").write_bytes(b"")
    assert bt.base_folder("generalist", "steel-dislocation-loops", tmp_path).endswith("generalist-minus-steel")
    import pytest

    with pytest.raises(SystemExit, match="generalist.py --hold-out uo2-grain-boundaries"):
        bt.base_folder("generalist", "uo2-grain-boundaries", tmp_path)


def test_one_tiny_run_end_to_end(shared_data, tmp_path):
    ev = tmp_path / "ev.json"
    args = ["--targets", "steel-dislocation-loops", "--sizes", "1", "--seeds", "0", "--bases", "scratch",
            "--minutes", "0.02", "--work", str(tmp_path / "w"), "--evidence", str(ev)]
    out = subprocess.run([sys.executable, "-m", "bench.bench_transfer", *args], capture_output=True, text=True,
                         timeout=300, cwd=REPO)  # from a checkout, no sys.path edits
    assert out.returncode == 0, out.stderr
    assert "| steel-dislocation-loops | regions | scratch | 0." in out.stdout
    runs = json.loads((tmp_path / "w" / "bench_transfer.json").read_text())["runs"]
    assert len(runs) == 1 and 0 <= runs[0]["f1"] <= 1 and runs[0]["train_images"] == [bt.draw(
        bt.real_split("steel-dislocation-loops")[0], 1, 0)[0][0].stem]
    test_names = {p.stem for p, _ in bt.real_split("steel-dislocation-loops")[1]}
    assert not test_names & set(runs[0]["train_images"])  # never trains on a test image
    e = json.loads(ev.read_text())
    assert e["targets"]["steel-dislocation-loops"]["results"]["1"]["winner"] == "scratch"
    again = subprocess.run([sys.executable, "-m", "bench.bench_transfer", *args], capture_output=True, text=True,
                           timeout=300, cwd=REPO)
    assert "seed=0" not in again.stdout and "| steel-dislocation-loops | regions | scratch | 0." in again.stdout
    assert "seed=0" in out.stdout  # the finished run is reused, not repeated


def test_a_base_label_can_carry_its_learning_rate_share(tmp_path):
    import pytest

    assert bt.split_base("generalist") == ("generalist", 1.0, False)
    assert bt.split_base("generalist@0.1") == ("generalist", 0.1, False)
    assert bt.split_base("generalist+rescale") == ("generalist", 1.0, True)
    (tmp_path / "generalist-minus-steel").mkdir()
    (tmp_path / "generalist-minus-steel" / "model.safetensors").write_bytes(b"")
    assert bt.base_folder("generalist@0.1", "steel-dislocation-loops", tmp_path).endswith("generalist-minus-steel")
    for bad in ("generalist@0", "generalist@2", "generalist@x", "scratch@0.1"):
        with pytest.raises(SystemExit, match="0 < F <= 1"):
            bt.split_base(bad)
    for bad in ("scratch+rescale", "generalist+shrink"):
        with pytest.raises(SystemExit, match="only option after"):
            bt.split_base(bad)


def test_zero_shot_scores_a_base_on_pool_images_only(shared_data, tmp_path):
    args = ["--zero-shot", "--targets", "steel-dislocation-loops", "--bases", "scratch,hrtem-nanoparticle,tem-denoise",
            "--work", str(tmp_path / "w")]
    out = subprocess.run([sys.executable, "-m", "bench.bench_transfer", *args], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "w" / "zero_shot.json").read_text())["rows"]
    # scratch has nothing to score and the denoiser does not segment: one row, the one-class HRTEM base
    assert [r["base"] for r in rows] == ["hrtem-nanoparticle"]
    pool, test = bt.real_split("steel-dislocation-loops")
    assert rows[0]["images"] == [p.stem for p, _ in pool] and not {p.stem for p, _ in test} & set(rows[0]["images"])
    assert 0 <= rows[0]["f1"] <= 1 and 0 < rows[0]["f1_all_foreground"] < 0.2  # loops cover a few % of the pixels
    assert f"| steel-dislocation-loops | hrtem-nanoparticle | foreground | {rows[0]['f1']:.3f} |" in out.stdout
    assert not list((tmp_path / "w").glob("runs*"))  # nothing was fine-tuned
