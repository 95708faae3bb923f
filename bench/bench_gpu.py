"""Benchmark of the GPU path (issue 17): training step vs loop, time to plateau, predict vs bare forward.

    python -m bench.bench_gpu --device cuda --data <dir> [--json out.json]   # the full run, < 4 minutes on an H100
    python -m bench.bench_gpu --device cpu --data <dir>                      # a smoke version in seconds (tests)

``--data``: the shared data folder (holding labeled/steel-dislocation-loops) or the steel folder itself; default
``../shared/data`` beside the checkout. Started with ``python -m`` from the checkout's root, it runs that checkout's
temzoo (Python puts the working directory first on the path; the JSON's ``temzoo`` says which ran), so a bare
checkout on the GPU machine needs no install, only the packages.

Protocol (all on one device, bf16 autocast + channels-last on CUDA as temzoo uses):
- **bare step**: forward + BCE/Dice loss + backward + AdamW on one fixed random batch already on the device, no
  augmentation; the loop's upper bound. **loop**: ``temzoo.train.loop.train_epoch`` (the real per-step code: batch
  source, augmentation, schedule, loss read-back) on the steel training images. Both in tiles/s at two tile/batch
  settings, with the network a run from scratch gets on that device (``large`` on CUDA, ``small`` on a CPU);
  TFLOP/s = FLOPs of one step (``torch.utils.flop_counter.FlopCounterMode``) / step time. The bare step is timed
  again with ``torch.backends.cudnn.benchmark`` on (temzoo leaves it off), to see whether it should be.
- **plateau**: ``temzoo.train.train`` from scratch on the 16-image steel set (default split: 12 train / 4 validation
  images, seed 0), tile and batch from free GPU memory (the CUDA default), for a fixed wall-clock budget
  (``--plateau-seconds``, 30) with early stopping off; plateau = the first epoch whose validation F1 is within 0.01
  of the best F1 of the whole budget; its time is the wall time since training started (setup, data reading and GPU
  sizing excluded, reported separately), and the epoch ends (validation, saving best/ and last/) are timed apart.
- **predict**: ``temzoo.predict.predict`` end to end on a random frame vs one bare forward of the whole frame
  (inference mode, same precision and layout), median of 3 after a warm-up, with and without TTA-8, for both network
  sizes (``small``, ``large``) with random weights.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEEL = "labeled/steel-dislocation-loops"

FULL = {"settings": [(128, 8), (256, 64)], "steps": 30, "sizes": [1024, 2048, 4096], "plateau_s": 30.0, "reps": 3}
SMOKE = {"settings": [(32, 2), (64, 2)], "steps": 2, "sizes": [64, 128], "plateau_s": None, "reps": 1}
TARGETS = {"predict": 1.2, "predict_4096_s": 0.08, "tta_4096_s": 0.4, "loop_fraction": 0.8, "plateau_s": 10.0}


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, reps: int) -> float:
    """Median seconds of ``reps`` calls after one warm-up call."""
    fn()
    _sync(device)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def smoke_subset(steel: Path, folder: Path, n: int = 4, size: int = 160) -> Path:
    """The top-left ``size`` px of the first ``n`` steel images and masks, written to ``folder``: the smoke run trains,
    validates and fits its domain-shift reference on 4 small crops, not 16 full images."""
    from PIL import Image

    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
        for f in sorted((steel / sub).iterdir())[:n]:
            with Image.open(f) as im:
                im.crop((0, 0, size, size)).save(folder / sub / f.name)
    return folder


def steel_folder(data: Path) -> Path | None:
    """The steel set under ``data`` (the shared data folder, or the set's own folder); None when absent."""
    for cand in (data / STEEL, data):
        if (cand / "images").is_dir() and (cand / "masks").is_dir():
            return cand
    return None


# ------------------------------------------------------------------------------------------------- training step
def _config(steel: Path, device: str, tile: int, batch: int, **kw):
    from temzoo.train.config import TrainConfig

    return TrainConfig(images=str(steel / "images"), masks=str(steel / "masks"), strategy="scratch", device=device,
                       tile_size=tile, batch_size=batch, gpu_autosize=False, seed=0, **kw)


def _bare_step_fn(run, tile: int, batch: int):
    """One training step (forward + loss + backward + AdamW) on a fixed random batch already on the device."""
    import torch

    from temzoo.train.loop import _forward

    dev, model, opt, spec = run.device, run.model, run.optimizer, run.setup.spec
    x = torch.randn(batch, 1, tile, tile, device=dev)
    y = (torch.rand(batch, 1, tile, tile, device=dev) > 0.7).long()

    def step() -> None:
        loss = run.loss_fn(_forward(model, x, dev, run.config.amp, spec.in_channels, run.config.channels_last), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    return step


def bare_step(run, tile: int, batch: int, steps: int) -> dict:
    """tiles/s and TFLOP/s of forward + loss + backward + AdamW on a fixed batch already on the device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    step = _bare_step_fn(run, tile, batch)
    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    t = _timed(lambda: [step() for _ in range(steps)], run.device, 1) / steps
    # The same with cuDNN's autotuner on (off in temzoo, as in torch by default): whether it is worth turning on.
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        t_tuned = _timed(lambda: [step() for _ in range(steps)], run.device, 1) / steps
    finally:
        torch.backends.cudnn.benchmark = before
    return {"tiles_s": batch / t, "step_s": t, "tflops": flops / t / 1e12, "gflop_per_step": flops / 1e9,
            "cudnn_benchmark_tiles_s": batch / t_tuned}


def compiled_step(run, tile: int, batch: int, steps: int) -> dict:
    """The bare step after ``model.compile()`` (what ``TrainConfig.compile`` does): tiles/s, and the seconds the
    first (compiling) steps took. Compiles the run's model in place: call it last."""
    step = _bare_step_fn(run, tile, batch)
    run.model.compile()
    t0 = time.perf_counter()
    step()
    step()
    _sync(run.device)
    compile_s = time.perf_counter() - t0
    t = _timed(lambda: [step() for _ in range(steps)], run.device, 1) / steps
    return {"compiled_tiles_s": batch / t, "compile_s": compile_s}


def loop_rate(run, batch: int, steps: int) -> float:
    """tiles/s of the real training loop's steps (``train_epoch``: batch source, augmentation, step, loss read)."""
    from temzoo.train.loop import TrainState, _make_budget, train_epoch

    budget = _make_budget(run, time.monotonic, time.monotonic())
    budget.epochs, budget.seconds = 1000, None
    state = TrainState(batch_size=batch)
    budget.steps_per_epoch = 2
    state.epoch = 1
    train_epoch(run, state, budget)  # warm-up: kernels, allocator
    _sync(run.device)
    budget.steps_per_epoch = steps
    state.epoch = 2
    t = time.perf_counter()
    out = train_epoch(run, state, budget)
    _sync(run.device)
    return out.steps * batch / (time.perf_counter() - t)


def training_rows(steel: Path, device: str, settings, steps: int, compile_too: bool = False) -> list[dict]:
    from temzoo.train.loop import _start_run

    rows = []
    for tile, batch in settings:
        with tempfile.TemporaryDirectory() as work:
            cfg = _config(steel, device, tile, batch, epochs=1000).validate()
            run = _start_run(cfg, Path(work), Path(work) / "out", _device(device), lambda _m: None)
            loop = loop_rate(run, batch, steps)
            bare = bare_step(run, tile, batch, steps)
            net = run.setup.spec.size or run.setup.spec.encoder_name
            compiled = compiled_step(run, tile, batch, steps) if compile_too else {}
        rows.append({"net": net, "tile": tile, "batch": batch, "loop_tiles_s": loop,
                     **{f"bare_{k}": v for k, v in bare.items()}, "loop_fraction": loop / bare["tiles_s"],
                     **compiled})
    return rows


def plateau(steel: Path, device: str, seconds: float | None, smoke: bool) -> dict:
    """Train from scratch for a fixed budget (early stopping off); when validation F1 first came within 0.01 of
    its best. Also how much of the wall time the epochs' ends (validation, saving best/ and last/) took: the time
    from each epoch's last step report to its epoch report."""
    from temzoo.train.loop import train

    kw = dict(epochs=2, steps_per_epoch=2) if smoke else dict(minutes=seconds / 60)
    tile, batch = (32, 2) if smoke else (128, 8)
    marks: dict[str, float] = {"end_s": 0.0}
    log: list[str] = []

    def on_step(_info: dict) -> None:
        marks["last_step"] = time.monotonic()
        marks.setdefault("first_step", marks["last_step"])

    def on_epoch(_record: dict) -> None:
        marks["last_epoch"] = time.monotonic()
        marks["end_s"] += marks["last_epoch"] - marks.get("last_step", marks["last_epoch"])

    with tempfile.TemporaryDirectory() as work:
        # GPU autosize on (the CUDA default): tile and batch from free memory; the smoke run keeps its tiny sizes.
        cfg = _config(steel, device, tile, batch, patience=0, **kw)
        cfg.gpu_autosize = not smoke
        t = time.perf_counter()
        train(cfg, Path(work), log=log.append, on_step=on_step, on_epoch=on_epoch)
        total = time.perf_counter() - t
        lines = [json.loads(x) for x in (Path(work) / "metrics.jsonl").read_text().splitlines()]
    best = max(r["val_f1"] for r in lines)
    first = next(r for r in lines if r["val_f1"] >= best - 0.01)
    wall = lines[-1]["wall_seconds"]
    return {"budget": f"{seconds:g} s" if seconds else f"{kw['epochs']} epochs", "best_f1": best,
            "plateau_s": first["wall_seconds"], "plateau_epoch": first["epoch"], "epochs": len(lines),
            "batch": lines[-1]["batch_size"], "sizing": next((x for x in log if x.startswith("GPU sizing")), None),
            "train_call_s": total, "setup_s": total - wall, "epoch_ends_s": marks["end_s"],
            # of the span from the first step's report to the last epoch's
            "epoch_ends_fraction": marks["end_s"] / max(marks["last_epoch"] - marks["first_step"], 1e-9)}


# ------------------------------------------------------------------------------------------------------- predict
def predict_rows(device: str, sizes, reps: int, nets=("small", "large")) -> list[dict]:
    """Per network size and frame size: one bare forward of the whole frame vs ``predict`` without and with TTA-8."""
    import torch

    from temzoo.predict import runtime_model
    from temzoo.zoo.checkpoint import Checkpoint, ModelSpec, TemzooMeta

    dev = _device(device)
    rows = []
    for net in nets:
        torch.manual_seed(0)
        spec = ModelSpec.preset(net)
        ck = Checkpoint(spec.build().eval(), TemzooMeta(pixel_size_nm=0.05), spec, None, f"{net}-spec")
        model = runtime_model(ck.model, dev)
        rows += [{"net": net, **_predict_row(ck, model, dev, device, size, reps)} for size in sizes]
        del model, ck
    return rows


def _predict_row(ck, model, dev, device: str, size: int, reps: int) -> dict:
    import numpy as np
    import torch

    from temzoo.predict import PredictOptions, predict
    from temzoo.types import Micrograph

    img = np.random.default_rng(size).normal(size=(size, size)).astype(np.float32)
    mg = Micrograph(img, 0.05)
    x = torch.from_numpy(img)[None, None].to(dev).contiguous(memory_format=torch.channels_last)

    def bare() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            model(x)

    row = {"size": size, "bare_s": _timed(bare, dev, reps)}
    for tta in (False, True):
        key = "tta8_s" if tta else "predict_s"
        row[key] = _timed(lambda: predict(ck, mg, PredictOptions(tta=tta, device=device)), dev, reps)
    row["ratio"], row["tta_ratio"] = row["predict_s"] / row["bare_s"], row["tta8_s"] / row["bare_s"]
    return row


def _device(name: str):
    from temzoo.device import pick_device

    return pick_device(name)


# ---------------------------------------------------------------------------------------------------------- main
def report(res: dict) -> str:
    out = [f"# {res['device']} | torch {res['torch']} | {res['mode']} run, {res['seconds']:.0f} s"]
    out += ["", "| net | tile x batch | bare step tiles/s | loop tiles/s | loop / bare | goal | bare TFLOP/s | "
                "GFLOP/step | bare tiles/s, cudnn.benchmark |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["training"]:
        out.append(f"| {r['net']} | {r['tile']}^2 x {r['batch']} | {r['bare_tiles_s']:.0f} | {r['loop_tiles_s']:.0f} | "
                   f"{r['loop_fraction']:.0%} | >= {TARGETS['loop_fraction']:.0%} | {r['bare_tflops']:.2f} | "
                   f"{r['bare_gflop_per_step']:.1f} | {r['bare_cudnn_benchmark_tiles_s']:.0f} |")
    for r in (r for r in res["training"] if "compiled_tiles_s" in r):
        out.append(f"torch.compile, {r['tile']}^2 x {r['batch']}: bare step {r['compiled_tiles_s']:.0f} tiles/s "
                   f"(plain {r['bare_tiles_s']:.0f}); first two steps {r['compile_s']:.1f} s")
    p = res.get("plateau")
    if p:
        out += ["", f"plateau ({res['images']} steel images, scratch, budget {p['budget']}, batch {p['batch']}): best "
                    f"val F1 {p['best_f1']:.3f}; within 0.01 of it at epoch {p['plateau_epoch']}/{p['epochs']}, "
                    f"{p['plateau_s']:.1f} s after training started (goal <= {TARGETS['plateau_s']:g} s); "
                    f"setup {p['setup_s']:.1f} s; epoch ends (validation + saving) {p['epoch_ends_s']:.1f} s = "
                    f"{p['epoch_ends_fraction']:.0%} of the training time"]
        if p.get("sizing"):
            out.append(p["sizing"])
    out += ["", "| net | size | bare forward s | predict s | ratio | goal | TTA-8 s | TTA-8 / bare |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["predict"]:
        out.append(f"| {r['net']} | {r['size']}^2 | {r['bare_s']:.4f} | {r['predict_s']:.4f} | {r['ratio']:.2f} | "
                   f"<= {TARGETS['predict']} | {r['tta8_s']:.4f} | {r['tta_ratio']:.1f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    ap.add_argument("--plateau-seconds", type=float, default=FULL["plateau_s"])
    ap.add_argument("--compile", action="store_true",
                    help="also time the bare step after torch.compile (adds the compile time, about a minute a setting)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    import temzoo

    from temzoo.device import describe_device

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA GPU here; run with --device cpu for the smoke version", file=sys.stderr)
        return 2
    plan = FULL if args.device == "cuda" else SMOKE
    if plan is SMOKE:
        from temzoo.train.loop import cpu_threads

        torch.set_num_threads(cpu_threads(None))  # as train() does: OpenMP threads on busy cores crawl
    steel = steel_folder(args.data)
    if steel is None:
        print(f"error: no steel set (images/ and masks/) under {args.data}; pass --data <shared data folder>",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    res = {"device": describe_device(_device(args.device)), "torch": torch.__version__,
           "mode": "full" if plan is FULL else "smoke", "temzoo": str(Path(temzoo.__file__).resolve().parent)}
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        if plan is SMOKE:
            steel = smoke_subset(steel, Path(tmp))
        res["images"] = len(list((steel / "images").iterdir()))
        res["training"] = training_rows(steel, args.device, plan["settings"], plan["steps"], args.compile)
        res["plateau"] = plateau(steel, args.device, args.plateau_seconds if plan is FULL else None, plan is SMOKE)
    res["predict"] = predict_rows(args.device, plan["sizes"], plan["reps"])
    res["seconds"] = time.perf_counter() - t0
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
