"""Benchmark: batch predict throughput on 1 and 2 dask workers, and peak memory of a long stack, frame by frame.

    HF_HUB_OFFLINE=1 python bench/bench_batch.py [--files 12] [--side 256] [--model hrtem-nanoparticle] [--workers 1 2]
    HF_HUB_OFFLINE=1 python bench/bench_batch.py --stack [--frames 5 20] [--stack-side 2048]

Throughput: ``--files`` generated PNGs (particles on a noisy background, ``--side`` px, pixel size = the model's, so
no resampling) through ``temzoo.batch.run_batch`` on a dask LocalCluster of N worker processes (cores / N torch
threads each), for each N of ``--workers``. The cluster is started and warmed first (one file per worker: each loads
the model once), then the timed batch joins it with ``scheduler=`` into a fresh folder: files/s is the steady state;
the start-up (processes, imports, model loads) is reported beside it. Every image is a full predict + domain-shift
check + export bundle, as ``temzoo predict`` writes it. Speed-up per worker = (files/s with 2 / files/s with 1) / 2;
1.0 would be perfect scaling.

Stack (``--stack``): a uint16 TIFF stack (as detectors write them) of ``--frames`` frames of ``--stack-side``^2 px is
predicted frame by frame (one bundle per frame) in a fresh subprocess per frame count, which reports its peak RSS
(``resource.getrusage``); the growth from the smallest to the largest count is what the frames cost beyond one.
The network is the default ``ModelSpec`` (random weights, no pixel size: images at their own scale).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _load() -> str:
    """The 1-, 5- and 15-minute load averages: this benchmark is honest only beside the machine's other work."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _blobs(rng, side: int):
    import numpy as np

    yy, xx = np.indices((side, side))
    img = rng.normal(0.3, 0.08, (side, side))
    for _ in range(max(4, side // 24)):
        cy, cx, r = rng.integers(10, side - 10, 2).tolist() + [int(rng.integers(4, 10))]
        img += ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) * 0.5
    return np.clip(img, 0, 1)


def throughput(files: int, side: int, model: str, workers: list[int]) -> list[dict]:
    import numpy as np
    from distributed import LocalCluster
    from PIL import Image

    from temzoo.batch import BatchConfig, run_batch
    from temzoo.zoo import load_model

    px = load_model(model).meta.pixel_size_nm
    cpus = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        rng = np.random.default_rng(0)
        for d, n in (("in", files), ("warm", max(workers))):
            (Path(tmp) / d).mkdir()
            for i in range(n):
                img = Image.fromarray((_blobs(rng, side) * 255).astype(np.uint8))
                img.save(Path(tmp) / d / f"img_{i:03d}.png")
        for n in workers:
            cfg = BatchConfig(model=model, pixel_size_nm=px, threads=max(1, cpus // n))
            load = _load()
            t0 = time.perf_counter()
            # The --workers N cluster (as temzoo.batch starts it), joined through --scheduler so that the timed run
            # finds every worker started and holding its model: steady-state files/s, start-up reported apart.
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None, silence_logs=50) as cluster:
                run_batch([Path(tmp) / "warm"], Path(tmp) / f"warm{n}", cfg, scheduler=cluster.scheduler_address)
                start = time.perf_counter() - t0
                t0 = time.perf_counter()
                res = run_batch([Path(tmp) / "in"], Path(tmp) / f"out{n}", cfg, scheduler=cluster.scheduler_address)
                wall = time.perf_counter() - t0
            assert not res.failed, res.failed
            rows.append({"workers": n, "threads_per_worker": cfg.threads, "files": files, "side": side,
                         "wall_s": round(wall, 2), "files_per_s": round(files / wall, 3),
                         "startup_s": round(start, 1), "load_before": load, "load_after": _load(),
                         "processes_used": len(res.loads)})
            print(json.dumps(rows[-1]), flush=True)
    by = {r["workers"]: r["files_per_s"] for r in rows}
    if 1 in by and 2 in by:
        print(f"speed-up 2 vs 1 worker: {by[2] / by[1]:.2f}x, per worker {by[2] / by[1] / 2:.2f}", flush=True)
    return rows


def _stack_child(frames: int, side: int) -> None:
    """Runs in its own process: write the stack frame by frame, predict it, report peak RSS (in MiB)."""
    import resource

    import numpy as np
    import tifffile
    import torch

    from temzoo.batch import BatchConfig, run_batch
    from temzoo.zoo.checkpoint import ModelSpec, TemzooMeta, save_checkpoint

    with tempfile.TemporaryDirectory(prefix="bench_stack_") as tmp:
        torch.manual_seed(0)
        ck = save_checkpoint(ModelSpec().build().eval(), Path(tmp) / "ck", TemzooMeta(pixel_size_nm=None))
        # One frame of particles, shifted a little per frame (an in-situ series), written frame by frame: making the
        # stack never holds it in memory either.
        # uint16, as detectors write stacks (the reader casts each frame to float32 on its own).
        base = (_blobs(np.random.default_rng(0), side) * 60000).astype(np.uint16)
        stack = Path(tmp) / "stack.tif"
        tifffile.imwrite(stack, (np.roll(base, 8 * k, axis=1) for k in range(frames)),
                         shape=(frames, side, side), dtype=np.uint16)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        res = run_batch([stack], Path(tmp) / "out", BatchConfig(model=str(ck)))
        wall = time.perf_counter() - t0
        assert len(res.rows) == frames and not res.failed, res.failed
        print(json.dumps({"frames": frames, "side": side, "stack_mb_float32": round(4 * frames * side * side / 2**20),
                          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                          "rss_before_batch_mb": round(rss0), "wall_s": round(wall, 1),
                          "s_per_frame": round(wall / frames, 2)}))


def stack(frames: list[int], side: int) -> list[dict]:
    rows = []
    for n in frames:
        load = _load()
        out = subprocess.run([sys.executable, __file__, "--stack-child", str(n), "--stack-side", str(side)],
                             capture_output=True, text=True, check=True).stdout
        rows.append(dict(json.loads(out.strip().splitlines()[-1]), load_before=load, load_after=_load()))
        print(json.dumps(rows[-1]), flush=True)
    print(f"peak RSS growth {frames[0]} -> {frames[-1]} frames: "
          f"{rows[-1]['peak_rss_mb'] - rows[0]['peak_rss_mb']} MB "
          f"(the extra frames: {rows[-1]['stack_mb_float32'] - rows[0]['stack_mb_float32']} MB as float32)",
          flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--model", default="hrtem-nanoparticle")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--stack", action="store_true", help="measure the stack's peak RSS instead of throughput")
    ap.add_argument("--frames", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--stack-side", type=int, default=2048)
    ap.add_argument("--stack-child", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    print(f"cpus {os.cpu_count()}, load {_load()}", flush=True)
    if a.stack_child is not None:
        _stack_child(a.stack_child, a.stack_side)
    elif a.stack:
        stack(a.frames, a.stack_side)
    else:
        throughput(a.files, a.side, a.model, a.workers)


if __name__ == "__main__":
    main()
