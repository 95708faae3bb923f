"""Benchmark: temzoo.predict vs one bare full-frame forward of the same network, peak memory, attribution time.

    HF_HUB_OFFLINE=1 python bench/bench_predict.py [--sizes 1024 2048 4096] [--device cpu] [--tta-sizes 1024]

Each size runs in a fresh subprocess so that its peak RSS (resource.getrusage ru_maxrss) is its own. Ratios
within one run are what count on a shared machine. Goals: predict <= 1.2x the bare forward without TTA, <= 8.5x
with TTA-8; 4096^2 float32 within 2 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time



def _one(size: int, device: str, tta: bool, explain: bool) -> dict:
    import resource

    import numpy as np
    import torch

    from temzoo.predict import PredictOptions, predict, runtime_model
    from temzoo.types import Micrograph
    from temzoo.zoo.checkpoint import Checkpoint, ModelSpec, TemzooMeta

    torch.manual_seed(0)
    spec = ModelSpec()
    ck = Checkpoint(spec.build().eval(), TemzooMeta(pixel_size_nm=0.05), spec, None, "default-spec")
    img = np.random.default_rng(0).normal(size=(size, size)).astype(np.float32)
    mg = Micrograph(img, 0.05)
    dev = torch.device(device)
    out: dict = {"size": size, "device": device, "tta": tta}
    # warm both paths on a small input first (allocator, oneDNN kernels)
    bare_model = runtime_model(ck.model, dev)
    with torch.inference_mode():
        bare_model(torch.zeros(1, 1, 256, 256, device=dev))
    predict(ck, Micrograph(img[:256, :256].copy(), 0.05), PredictOptions(device=device))
    # predict first, so that the peak RSS it reports is predict's own (the bare full-frame forward needs more)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    pred = predict(ck, mg, PredictOptions(tta=tta, device=device))
    out["predict_s"] = time.perf_counter() - t
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_before_predict_mb"] = rss_before
    out["tiles"] = pred.info["tiles"]
    out["tile_shape"] = pred.info["tile_shape"]
    # bare: one forward of the whole frame, the same network, inference mode -- the lower bound for predict
    x = torch.from_numpy(img)[None, None].to(dev)
    with torch.inference_mode():
        t = time.perf_counter()
        bare_model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        out["bare_s"] = time.perf_counter() - t
    out["ratio"] = out["predict_s"] / out["bare_s"]
    del x
    if explain:
        from temzoo.explain import explain as run_explain

        box = (size // 2 - 32, size // 2 - 32, size // 2 + 32, size // 2 + 32)
        for method in ("gradcam", "integrated-gradients"):
            t = time.perf_counter()
            run_explain(ck, mg, method, region=box, prediction=pred)
            out[f"{method}_box64_s"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--tta-sizes", type=int, nargs="*", default=[1024])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--_one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._one:
        size, tta, explain = int(args._one[0]), args._one[1] == "1", args._one[2] == "1"
        print(json.dumps(_one(size, args.device, tta, explain)))
        return
    rows = []
    runs = [(s, False, s == args.sizes[0]) for s in args.sizes] + [(s, True, False) for s in args.tta_sizes]
    for size, tta, explain in runs:
        r = subprocess.run([sys.executable, __file__, "--device", args.device, "--_one", str(size),
                            "1" if tta else "0", "1" if explain else "0"], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"size {size} tta={tta} failed: {r.stderr.strip().splitlines()[-1:]}")
            continue
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"{'size':>6} {'TTA':>4} {'tiles':>6} {'bare s':>8} {'predict s':>10} {'ratio':>6} {'goal':>5} "
          f"{'peak RSS MB':>12}")
    for r in rows:
        goal = 8.5 if r["tta"] else 1.2
        print(f"{r['size']:>6} {'x8' if r['tta'] else '-':>4} {r['tiles']:>6} {r['bare_s']:>8.2f} "
              f"{r['predict_s']:>10.2f} {r['ratio']:>6.2f} {goal:>5} {r['peak_rss_mb']:>12.0f}")
    for r in rows:
        for k in ("gradcam_box64_s", "integrated-gradients_box64_s"):
            if k in r:
                print(f"attribution {k[:-8]} for a 64x64 px box in a {r['size']}^2 image: {r[k]:.2f} s")


if __name__ == "__main__":
    main()
