"""The pretraining study: scratch vs simulation-pretrained vs denoising-pretrained bases at 2/4/8 labelled images.

    python scripts/recipes/study.py [--datasets sim,uo2-grain-boundaries,steel-dislocation-loops]
                                    [--sizes 2,4,8] [--bases scratch,hrtem-nanoparticle,tem-denoise]
                                    [--minutes 2] [--clock cpu] [--device auto] [--seeds 0] [--cache DIR]

For each data set, base and number of labelled images: fine-tune (strategy ``scratch`` for the scratch base,
``full`` otherwise; temzoo's default settings otherwise) for a fixed budget with no validation split (the few
labelled images all train; the epoch with the lowest training loss is kept), then score pooled pixel F1 on test
images that no run ever trains on. The budget is process CPU time on one thread by default (``--clock cpu``), so
two copies of the script (one per data set) can share a 2-core machine without changing each other's numbers.
Also records the budget seconds until the kept epoch ("time to reach it"). Results are appended to
``<work>/study.jsonl`` (one line per run; reruns skip finished ones) and printed as a markdown table to paste into
docs/PRETRAINING_STUDY.md, with the machine. Data sets:

- ``sim``: a labelled pool of 16 unseen simulated fields (seed 2000, mixed dose/defocus); test = recipe (a)'s test
  set (8 other unseen fields, seed 1000) at every dose/defocus condition (doses 30-1000 e/A^2 at -10 nm, defocus
  -20..20 nm at 300 e/A^2), regenerated here from the exit-wave cache when missing; F1 = mean over conditions;
- ``uo2-grain-boundaries`` / ``steel-dislocation-loops``: the shared labelled sets, last 4 images by name held out
  (uncalibrated files: see ``SETTINGS``; UO2 is trained and scored at half resolution, the recommended recipe).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

from temzoo.paths import bundled_zoo_dir

from _common import evaluate, machine, work_dir
from hrtem_nanoparticle import TEST_SEED, conditions

# Per data set: settings beyond temzoo's defaults, as docs/FINETUNING.md recommends them. The real files carry no pixel
# size: steel's is about 0.39 nm/px (field of view ~200 nm); UO2's 1024^2 grain-boundary images learn best at half
# resolution (the model records the factor and evaluation shrinks the test images alike).
SETTINGS = {"uo2-grain-boundaries": {"downsample": 2.0},
            "steel-dislocation-loops": {"pixel_size_nm": 0.39}}
BASES = {"scratch": "scratch", "hrtem-nanoparticle": str(bundled_zoo_dir() / "hrtem-nanoparticle"),
         "tem-denoise": str(bundled_zoo_dir() / "tem-denoise")}


def sim_data(work: Path, cache: str) -> tuple[list[tuple[Path, Path]], list[Path]]:
    from temzoo.simulate import SimulationConfig, generate

    pool = work / "sim_pool"
    if not (pool / "simulation.json").exists():
        generate(SimulationConfig(n=16, variants_per_field=1, seed=2000, cache_dir=cache), pool)
    for dose, df in conditions():
        test = work / "sim_test" / f"dose{dose:g}_df{df:g}"
        if not (test / "simulation.json").exists():
            generate(SimulationConfig(n=8, variants_per_field=1, seed=TEST_SEED, cache_dir=cache,
                                      dose_values=(dose,), defocus_values=(df,)), test)
    pairs = [(p, pool / "masks" / f"{p.stem}.png") for p in sorted((pool / "images").iterdir())]
    return pairs, [work / "sim_test" / f"dose{d:g}_df{f:g}" for d, f in conditions()]


def real_data(task: str, work: Path, n_test: int = 4) -> tuple[list[tuple[Path, Path]], list[Path]]:
    from temzoo.paths import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("error: ../shared/data is absent")
    from temzoo.labelled import split_last

    src = shared / "labeled" / task
    pool, test = split_last(src / "images", src / "masks", n_test)
    ti, tm = work / f"{task}_test" / "images", work / f"{task}_test" / "masks"
    for d in (ti, tm):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for img, mask in test:
        (ti / img.name).symlink_to(img)
        (tm / mask.name).symlink_to(mask)
    return pool, [ti.parent]


def one_run(work: Path, dataset: str, pairs, tests: list[Path], base: str, n: int, seed: int,
            minutes: float, clock: str, device: str) -> dict:
    from temzoo.train.config import TrainConfig
    from temzoo.train.loop import train

    chosen = random.Random(seed).sample(pairs, n)
    run = work / "runs" / f"{dataset}_{base}_{n}_{seed}"
    shutil.rmtree(run, ignore_errors=True)
    for sub in ("images", "masks"):
        (run / "data" / sub).mkdir(parents=True)
    for img, mask in chosen:
        (run / "data" / "images" / img.name).symlink_to(img.resolve())
        (run / "data" / "masks" / mask.name).symlink_to(mask.resolve())
    cfg = TrainConfig(images=str(run / "data" / "images"), masks=str(run / "data" / "masks"), base=BASES[base],
                      strategy="scratch" if base == "scratch" else "full", minutes=minutes, clock=clock,
                      cpu_threads=1 if clock == "cpu" else None, device=device, val_fraction=0.0, patience=1000,
                      amp=False,  # fp32 as measured in docs/PRETRAINING_STUDY.md (bf16 on CPU came later)
                      seed=seed, **SETTINGS.get(dataset, {}))
    t = time.perf_counter()
    result = train(cfg, run / "work", out=run / "result")
    seconds = time.perf_counter() - t
    records = [json.loads(x) for x in (result / "metrics.jsonl").read_text().splitlines() if x.strip()]
    kept = min(records, key=lambda r: r["train_loss"])
    px = SETTINGS.get(dataset, {}).get("pixel_size_nm")
    per_test = [evaluate(result, d / "images", d / "masks", pixel_size_nm=px, device=device) for d in tests]
    shutil.rmtree(run / "work", ignore_errors=True)  # keep the result folder, drop resume state
    mean = {k: round(sum(r[k] for r in per_test) / len(per_test), 4) for k in ("f1", "iou", "object_f1")}
    return {"dataset": dataset, "base": base, "n_labelled": n, "seed": seed, "minutes": minutes, "clock": clock,
            **mean, "f1_by_test": {d.name: r["f1"] for d, r in zip(tests, per_test)},
            "n_test": sum(r["n_images"] for r in per_test), "epochs": len(records),
            "seconds_to_kept_epoch": kept["seconds"], "seconds_total": round(seconds, 1),
            "train_images": [p.stem for p, _ in chosen]}


def table(rows: list[dict]) -> str:
    sizes = sorted({r["n_labelled"] for r in rows})
    out = "| data set | base | " + " | ".join(f"F1 @ {n} (s)" for n in sizes) + " |\n"
    out += "|---|---|" + "---|" * len(sizes) + "\n"
    for ds in sorted({r["dataset"] for r in rows}):
        for base in BASES:
            cells = []
            for n in sizes:
                rs = [r for r in rows if r["dataset"] == ds and r["base"] == base and r["n_labelled"] == n]
                if not rs:
                    cells.append("")
                    continue
                f1 = sum(r["f1"] for r in rs) / len(rs)
                s = sum(r["seconds_to_kept_epoch"] for r in rs) / len(rs)
                cells.append(f"{f1:.3f} ({s:.0f})")
            if any(cells):
                out += f"| {ds} | {base} | " + " | ".join(cells) + " |\n"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="sim,uo2-grain-boundaries,steel-dislocation-loops")
    ap.add_argument("--sizes", default="2,4,8")
    ap.add_argument("--bases", default=",".join(BASES))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--minutes", type=float, default=2.0, help="training budget per run")
    ap.add_argument("--clock", default="cpu", choices=("cpu", "wall"),
                    help="budget in process CPU time on one thread (default) or wall-clock time on all threads")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work", default=None)
    ap.add_argument("--cache", default=None, help="exit-wave cache (recipe a's work/cache saves the multislice)")
    args = ap.parse_args()

    work = work_dir("study", args.work)
    done_path = work / "study.jsonl"
    rows = [json.loads(x) for x in done_path.read_text().splitlines()] if done_path.exists() else []
    for base in args.bases.split(","):
        if base not in BASES:
            raise SystemExit(f"error: unknown base {base!r}; choose from {', '.join(BASES)}")
        if base != "scratch" and not Path(BASES[base]).is_dir():
            raise SystemExit(f"error: {BASES[base]} is missing; run its recipe first")
    for ds in args.datasets.split(","):
        if ds == "sim":
            pairs, tests = sim_data(work, args.cache or str(work / "cache"))
        else:
            pairs, tests = real_data(ds, work)
        for n in (int(x) for x in args.sizes.split(",")):
            for base in args.bases.split(","):
                for seed in (int(x) for x in args.seeds.split(",")):
                    key = (ds, base, n, seed, args.minutes, args.clock)
                    if any((r["dataset"], r["base"], r["n_labelled"], r["seed"], r["minutes"], r.get("clock", "wall"))
                           == key for r in rows):
                        continue
                    r = one_run(work, ds, pairs, tests, base, n, seed, args.minutes, args.clock, args.device)
                    rows.append(r)
                    with open(done_path, "a") as f:
                        f.write(json.dumps(r) + "\n")
                    print(f"{ds:26s} {base:20s} n={n} seed={seed}: F1 {r['f1']:.3f} "
                          f"(object F1 {r['object_f1']:.3f}), kept epoch at {r['seconds_to_kept_epoch']:.0f} s "
                          f"of {r['seconds_total']:.0f} s", flush=True)
    print(f"\nmachine: {machine()}; budget {args.minutes} {args.clock}-clock min per run\n")
    print(table([r for r in rows if r["minutes"] == args.minutes and r.get("clock", "wall") == args.clock]))


if __name__ == "__main__":
    main()
