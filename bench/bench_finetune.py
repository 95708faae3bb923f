"""Time-to-quality with 4 labelled images: temzoo's recommended recipe vs a plain smp loop vs AtomAI's Segmentor.

For each shared labelled set, 4 images are given to each method (the same 4; temzoo holds one of them out for early
stopping, the baselines train on all 4) and every other labelled image is the unseen test set. Each method trains
for a CPU-time budget (1, 2, 5 CPU-minutes by default, one thread) and is scored by pooled pixel F1 at 0.5 on the
test images, through the same metric code. Budgets are process CPU time so that other people's load on a shared
machine does not change the numbers (wall times are printed too).

- temzoo: ``temzoo.train.train`` with the recommended settings (``RECIPES`` below), one run per budget (its cosine
  schedule is fitted to the budget).
- smp-plain: the textbook loop - smp U-Net with the same encoder, random 256 px crops, flips, BCE, Adam 1e-3
  constant, batch 4, no validation; snapshots at each budget in a single run (a constant-lr loop does not depend on
  its budget).
- atomai: ``atomai.models.Segmentor`` (its own U-Net, BCE ("ce") loss, 256 px patches, no augmentation, batch 4) in its
  own environment (``--atomai-python /tmp/atomai-venv/bin/python``); the number of training iterations per budget
  comes from a timed calibration run; predictions are scored here.

Usage::

    python bench/bench_finetune.py [--sets uo2,steel] [--budgets 1,2,5] [--methods temzoo,smp,atomai]
                                   [--atomai-python PATH] [--json results.json]
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

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SETS = {
    # name: (folder under shared/data/labeled, the 4 training images, pixel size given to temzoo, downsample)
    "uo2": ("uo2-grain-boundaries", ["1", "4", "5", "7"]),
    "steel": ("steel-dislocation-loops", ["1", "2", "3", "4"]),
}
# temzoo's recommended recipe for a few labelled images on a CPU without a pretrained base (docs/FINETUNING.md).
RECIPES = {
    "uo2": {"downsample": 2.0, "pixel_size_nm": 1.0},
    "steel": {"pixel_size_nm": 0.39},
}


def shared_data() -> Path:
    from temzoo.paths import shared_data_dir

    d = shared_data_dir()
    if d is None:
        sys.exit("../shared/data is absent: the benchmark needs the shared labelled sets")
    return d


def make_split(name: str, root: Path) -> tuple[Path, Path]:
    """Symlinked train/ and test/ folders (images/ + masks/) for one set."""
    folder, train_names = SETS[name]
    src = shared_data() / "labeled" / folder
    for sub in ("train", "test"):
        for kind in ("images", "masks"):
            (root / name / sub / kind).mkdir(parents=True, exist_ok=True)
    for img in sorted((src / "images").iterdir()):
        sub = "train" if img.stem in train_names else "test"
        (root / name / sub / "images" / img.name).symlink_to(img)
        (root / name / sub / "masks" / f"{img.stem}.png").symlink_to(src / "masks" / f"{img.stem}.png")
    return root / name / "train", root / name / "test"


def score_folder(model_dir: Path, test: Path, pixel_size_nm: float | None) -> float:
    from temzoo.metrics import evaluate_folders
    from temzoo.zoo import load_model

    res = evaluate_folders(load_model(str(model_dir)), test / "images", test / "masks", pixel_size_nm=pixel_size_nm)
    return float(res["f1"])


def pooled_f1(probs: list[np.ndarray], masks: list[np.ndarray]) -> float:
    tp = fp = fn = 0
    for p, m in zip(probs, masks):
        pred, gt = p >= 0.5, m > 0
        tp += int((pred & gt).sum())
        fp += int((pred & ~gt).sum())
        fn += int((~pred & gt).sum())
    return 2 * tp / max(1, 2 * tp + fp + fn)


# ----------------------------------------------------------------------------------------------- methods
def run_temzoo(name: str, train: Path, test: Path, budgets: list[float], work: Path) -> list[dict]:
    from temzoo.train import TrainConfig
    from temzoo.train import train as train_fn

    out = []
    for b in budgets:
        cfg = TrainConfig(images=str(train / "images"), masks=str(train / "masks"), base="scratch",
                          strategy="scratch", minutes=b, clock="cpu", cpu_threads=1, **RECIPES[name])
        t0 = time.monotonic()
        result = train_fn(cfg, work / f"temzoo-{name}-{b}", log=lambda s: None)
        wall = time.monotonic() - t0
        f1 = score_folder(result, test, RECIPES[name].get("pixel_size_nm"))
        out.append({"method": "temzoo", "set": name, "cpu_minutes": b, "f1": f1, "wall_s": round(wall, 1)})
        print(json.dumps(out[-1]), flush=True)
    return out


def _read_pairs(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    from temzoo.io import read_micrograph
    from temzoo.io.masks import read_mask

    imgs, masks, names = [], [], []
    for p in sorted((folder / "images").iterdir()):
        imgs.append(read_micrograph(p).frame(0))
        masks.append(read_mask(folder / "masks" / f"{p.stem}.png"))
        names.append(p.stem)
    return imgs, masks, names


def run_smp_plain(name: str, train: Path, test: Path, budgets: list[float], work: Path) -> list[dict]:
    """The textbook loop most users would write first."""
    import torch

    from temzoo.preprocess import normalize
    from temzoo.zoo.checkpoint import ModelSpec, TemzooMeta, save_checkpoint

    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    imgs, masks, _ = _read_pairs(train)
    imgs = [normalize(i) for i in imgs]
    model = ModelSpec().build()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    bce = torch.nn.BCEWithLogitsLoss()
    tile, bs = 256, 4
    marks = sorted(budgets)
    out = []
    t0, w0 = time.process_time(), time.monotonic()
    model.train()
    steps = 0
    while marks:
        xs, ys = [], []
        for _ in range(bs):
            k = int(rng.integers(len(imgs)))
            h, w = imgs[k].shape
            y0, x0 = int(rng.integers(0, h - tile + 1)), int(rng.integers(0, w - tile + 1))
            x, y = imgs[k][y0:y0 + tile, x0:x0 + tile], masks[k][y0:y0 + tile, x0:x0 + tile]
            if rng.random() < 0.5:
                x, y = x[:, ::-1], y[:, ::-1]
            if rng.random() < 0.5:
                x, y = x[::-1], y[::-1]
            xs.append(x.copy())
            ys.append(y.copy())
        xb = torch.from_numpy(np.stack(xs))[:, None]
        yb = torch.from_numpy(np.stack(ys).astype(np.float32))[:, None]
        loss = bce(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if time.process_time() - t0 >= marks[0] * 60:
            b = marks.pop(0)
            wall = time.monotonic() - w0
            model.eval()
            folder = save_checkpoint(model, work / f"smp-{name}-{b}", TemzooMeta(pixel_size_nm=None, tile_size=512))
            model.train()
            f1 = score_folder(folder, test, None)
            out.append({"method": "smp-plain", "set": name, "cpu_minutes": b, "f1": f1, "wall_s": round(wall, 1),
                        "steps": steps})
            print(json.dumps(out[-1]), flush=True)
            t0 += time.process_time() - t0 - b * 60  # scoring time does not count
    return out


ATOMAI_SCRIPT = r"""
import json, sys, time, numpy as np, torch
torch.set_num_threads(1)
from atomai.models import Segmentor
d = np.load(sys.argv[1]); cfg = json.loads(sys.argv[2])
X, y = d["X"], d["y"]
def fit(cycles):
    torch.manual_seed(0); np.random.seed(0)
    m = Segmentor("Unet", nb_classes=1)
    t0 = time.process_time()
    m.fit(X, y, X[:4], y[:4], loss="ce", training_cycles=cycles, batch_size=4, compute_accuracy=False,
          print_loss=10**9, filename="/tmp/atomai_bench_model")
    return m, time.process_time() - t0
if cfg["mode"] == "calibrate":
    _, t = fit(cfg["cycles"]); print("\nRESULT " + json.dumps({"seconds_per_cycle": t / cfg["cycles"]}))
else:
    m, t = fit(cfg["cycles"])
    probs = []
    for img in d["test"]:
        # logits=True: AtomAI applies the sigmoid itself and returns probabilities
        out = m.predict(img[None], compute_coords=False, logits=True)
        p = out[0] if isinstance(out, tuple) else out
        probs.append(np.asarray(p).reshape(img.shape[0], img.shape[1], -1)[..., 0])
    np.save(cfg["out"], np.stack(probs)); print("\nRESULT " + json.dumps({"train_cpu_s": t}))
"""


def _unit_range(a: np.ndarray) -> np.ndarray:
    """Percentile-clipped min-max to 0..1: the input scaling AtomAI's examples use."""
    lo, hi = np.percentile(a, [0.5, 99.5])
    return ((np.clip(a, lo, hi) - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def run_atomai(name: str, train: Path, test: Path, budgets: list[float], work: Path, python: str) -> list[dict]:
    normalize = _unit_range
    imgs, masks, _ = _read_pairs(train)
    timgs, tmasks, _ = _read_pairs(test)
    tile = 256
    X, y = [], []
    for im, m in zip(imgs, masks):
        im = normalize(im)
        for r in range(0, im.shape[0] - tile + 1, tile):
            for c in range(0, im.shape[1] - tile + 1, tile):
                X.append(im[r:r + tile, c:c + tile])
                y.append((m[r:r + tile, c:c + tile] > 0).astype(np.float32))
    data = work / f"atomai-{name}.npz"
    np.savez(data, X=np.stack(X), y=np.stack(y)[:, None], test=np.stack([normalize(t) for t in timgs]))
    script = work / "atomai_fit.py"
    script.write_text(ATOMAI_SCRIPT)

    def call(cfg: dict) -> dict:
        r = subprocess.run([python, str(script), str(data), json.dumps(cfg)], capture_output=True, text=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
        if r.returncode != 0:
            raise RuntimeError(f"atomai failed: {r.stderr[-1500:]}")
        # AtomAI prints progress without newlines; the result is the line marked RESULT.
        line = next(x for x in reversed(r.stdout.splitlines()) if x.startswith("RESULT "))
        return json.loads(line[len("RESULT "):])

    spc = call({"mode": "calibrate", "cycles": 20})["seconds_per_cycle"]
    out = []
    for b in budgets:
        cycles = max(1, int(b * 60 / spc))
        probs_file = work / f"atomai-{name}-{b}.npy"
        t0 = time.monotonic()
        info = call({"mode": "fit", "cycles": cycles, "out": str(probs_file)})
        probs = list(np.load(probs_file))
        f1 = pooled_f1(probs, tmasks)
        out.append({"method": "atomai", "set": name, "cpu_minutes": b, "f1": f1, "cycles": cycles,
                    "train_cpu_s": round(info["train_cpu_s"], 1), "wall_s": round(time.monotonic() - t0, 1)})
        print(json.dumps(out[-1]), flush=True)
    return out


def speedups(rows: list[dict]) -> list[str]:
    """For each baseline: the smallest temzoo budget reaching the baseline's best F1, as a ratio of budgets."""
    lines = []
    for s in sorted({r["set"] for r in rows}):
        tz = sorted((r for r in rows if r["set"] == s and r["method"] == "temzoo"), key=lambda r: r["cpu_minutes"])
        for m in sorted({r["method"] for r in rows if r["set"] == s} - {"temzoo"}):
            base = [r for r in rows if r["set"] == s and r["method"] == m]
            if not base or not tz:
                continue
            best = max(base, key=lambda r: r["f1"])
            reach = next((r for r in tz if r["f1"] >= best["f1"]), None)
            if reach is None:
                lines.append(f"{s}: temzoo never reached {m}'s best F1 {best['f1']:.3f}")
            else:
                lines.append(f"{s}: temzoo reached {m}'s best F1 {best['f1']:.3f} (at {best['cpu_minutes']:g} min) in "
                             f"{reach['cpu_minutes']:g} min: >= {best['cpu_minutes'] / reach['cpu_minutes']:.1f}x")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="uo2")
    ap.add_argument("--budgets", default="1,2,5")
    ap.add_argument("--methods", default="temzoo,smp,atomai")
    ap.add_argument("--atomai-python", default="/tmp/atomai-venv/bin/python")
    ap.add_argument("--json", help="write all rows here")
    args = ap.parse_args()
    budgets = [float(b) for b in args.budgets.split(",")]
    rows: list[dict] = []
    load = os.getloadavg()
    print(f"# machine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        root = Path(tmp)
        for s in args.sets.split(","):
            train, test = make_split(s, root)
            for m in args.methods.split(","):
                if m == "temzoo":
                    rows += run_temzoo(s, train, test, budgets, root)
                elif m == "smp":
                    rows += run_smp_plain(s, train, test, budgets, root)
                elif m == "atomai":
                    if not Path(args.atomai_python).exists():
                        print(f"# atomai skipped: {args.atomai_python} does not exist", flush=True)
                        continue
                    rows += run_atomai(s, train, test, budgets, root, args.atomai_python)
    print("\n| set | method | " + " | ".join(f"F1 @ {b:g} CPU-min" for b in budgets) + " |")
    print("|---|---|" + "---|" * len(budgets))
    for s in args.sets.split(","):
        for m in ("temzoo", "smp-plain", "atomai"):
            got = {r["cpu_minutes"]: r["f1"] for r in rows if r["set"] == s and r["method"] == m}
            if got:
                print(f"| {s} | {m} | " + " | ".join(f"{got.get(b, float('nan')):.3f}" for b in budgets) + " |")
    for line in speedups(rows):
        print(line)
    load = os.getloadavg()
    print(f"# load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
