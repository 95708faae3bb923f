"""bench/bench_gpu.py cannot rot: its CPU smoke version runs end to end as the GPU machine starts it (``python -m``
from the checkout's root, no PYTHONPATH, no install needed), on the real steel set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "bench.bench_gpu", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)


def test_cpu_smoke_run_prints_the_table_and_writes_json(shared_data, tmp_path):
    out = tmp_path / "gpu.json"
    r = _run(tmp_path, "--device", "cpu", "--data", str(shared_data), "--json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("# cpu (") and "loop / bare" in r.stdout and "TTA-8 / bare" in r.stdout
    res = json.loads(out.read_text())
    # the checkout's own temzoo ran, not an installed copy (the GPU machine gets a bare checkout)
    assert res["temzoo"] == str(REPO / "temzoo")
    assert [(t["net"], t["tile"], t["batch"]) for t in res["training"]] == [("small", 32, 2), ("small", 64, 2)]
    assert all(t["loop_tiles_s"] > 0 and t["bare_tiles_s"] > 0 and t["bare_gflop_per_step"] > 0
               and t["bare_cudnn_benchmark_tiles_s"] > 0 for t in res["training"])
    plateau = res["plateau"]
    assert 0 <= plateau["best_f1"] <= 1 and plateau["plateau_epoch"] >= 1 and plateau["budget"] == "2 epochs"
    assert 0 < plateau["epoch_ends_s"] < plateau["train_call_s"] and plateau["sizing"] is None  # no GPU sizing on CPU
    assert [(p["net"], p["size"]) for p in res["predict"]] == [("small", 64), ("small", 128), ("large", 64),
                                                               ("large", 128)]
    assert all(p["tta8_s"] > 0 and p["bare_s"] > 0 for p in res["predict"])


def test_missing_data_is_a_one_line_error(tmp_path):
    r = _run(tmp_path, "--device", "cpu", "--data", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and r.stderr.startswith("error: no steel set") and "Traceback" not in r.stderr
