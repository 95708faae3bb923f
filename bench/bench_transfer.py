"""Does the zoo transfer? Leave-one-set-out fine-tuning at 1, 2 and 4 labelled images, equal CPU budget, 3 seeds.

    python -m bench.bench_transfer [--quick] [--targets uo2-grain-boundaries,steel-dislocation-loops,sim]
        [--sizes 1,2,4] [--seeds 0,1,2] [--bases scratch,generalist,hrtem-nanoparticle,tem-denoise]
        [--minutes 2] [--validation regions] [--compare-validation image] [--json out.json] [--evidence FILE]

Targets: every labelled set in ``../shared/data/labeled`` plus the simulated HRTEM test set. For each target the
base under test never saw a single image of it: ``generalist`` means the generalist recipe's base trained with that
target held out (``scripts/recipes/generalist.py --hold-out TARGET``, folder ``generalist-minus-<target>``), and a
bundled base is skipped on a target it was trained on (``SAW``). Per target, ``n`` labelled images are drawn from the
target's pool (seed ``s`` draws its own images; the 1-image draw is inside the 2-, the 2 inside the 4-image draw),
fine-tuned (``scratch`` for scratch, ``full`` otherwise; temzoo's defaults) for the same process-CPU budget on one
thread, and scored by pooled pixel F1 at 0.5 on the target's test images, which no run trains or validates on
(real sets: the last 4 images by name; sim: 8 unseen fields at several dose/defocus conditions, F1 = mean over
conditions). Model selection uses only the labelled images (``--validation``: ``regions`` = a band of every image,
``image`` = whole images as before, ``none`` = fixed schedule); never the test images.

A base written ``NAME@F`` (e.g. ``generalist@0.1``) is fine-tuned with its pretrained parameters at ``F`` times the
learning rate (``TrainConfig.base_lr_factor``; new ones, e.g. a reinitialised head, at the full rate): its own row.

Prints a markdown table (mean +- sd over seeds, and the difference to scratch on the same seeds), writes all runs to
``--json`` and the per-target summary that ``temzoo.zoo.registry.recommended_base`` reads to ``--evidence``.
``--quick`` (about 30 CPU-minutes): bases scratch + generalist, 0.3 CPU-minutes per run, two sim conditions, and the
``image`` validation scheme again at 4 labelled images for comparison; the table header says so.

``--zero-shot`` fine-tunes nothing: it runs each base as it is on each target's pool images (never the test images)
and prints the pooled pixel F1 of the base's best class against the labels, beside "all foreground": the start a
class-matched head gets (``temzoo.train.headmatch``), read in seconds. On the UO2-held-out generalists it rose with
pretraining compute as their fine-tuned transfer did (docs/PRETRAINING_STUDY.md section 9), so it screens bases and
procedural families before the hours of fine-tuning runs; it does not replace them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no Hub lookups while benchmarking

REAL = ("uo2-grain-boundaries", "steel-dislocation-loops")
TARGETS = (*REAL, "sim")
SHORT = {"uo2-grain-boundaries": "uo2", "steel-dislocation-loops": "steel", "sim": "sim"}
# What kind of image each target is (what recommended_base matches a user's images against) and its settings
# beyond temzoo's defaults (as in docs/PRETRAINING_STUDY.md: UO2 at half resolution, steel at ~0.39 nm/px).
KIND = {"uo2-grain-boundaries": {"modality": "bf-tem", "pixel_size_nm": None, "structure": "grain-boundary lines"},
        "steel-dislocation-loops": {"modality": "bf-tem", "pixel_size_nm": 0.39, "structure": "dislocation loops"},
        "sim": {"modality": "hrtem", "pixel_size_nm": 0.05, "structure": "nanoparticles (simulated HRTEM)"}}
SETTINGS = {"uo2-grain-boundaries": {"downsample": 2.0}, "steel-dislocation-loops": {"pixel_size_nm": 0.39}}
N_TEST = 4  # real sets: the last 4 images by name are the test set (as in docs/PRETRAINING_STUDY.md)
SIM_POOL_SEED, SIM_TEST_SEED = 2000, 1000  # SIM_TEST_SEED = temzoo.simulate.dataset.TEST_SEED
# Bundled bases and the targets whose images (or family: simulated HRTEM fields) they were trained on.
SAW = {"hrtem-nanoparticle": {"sim"}, "tem-denoise": {"sim"}, "uo2-grain-boundaries": {"uo2-grain-boundaries"},
       "steel-dislocation-loops": {"steel-dislocation-loops"}}
QUICK_SIM_CONDITIONS = [(30.0, -10.0), (300.0, -10.0)]


# ------------------------------------------------------------------------------------------------- data
def real_split(task: str) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """(pool, test) image/mask pairs of a shared labelled set; test = the last ``N_TEST`` by name."""
    from temzoo.paths import shared_data_dir

    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("error: ../shared/data is absent; the benchmark needs the labelled sets")
    from temzoo.labelled import split_last

    src = shared / "labeled" / task
    return split_last(src / "images", src / "masks", N_TEST)


def sim_conditions(quick: bool) -> list[tuple[float, float]]:
    from temzoo.simulate.dataset import sim_test_conditions

    return list(QUICK_SIM_CONDITIONS) if quick else sim_test_conditions()


def sim_split(work: Path, cache: str, quick: bool) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(pool pairs: 16 unseen fields, test folders: 8 other fields per dose/defocus condition)."""
    from temzoo.simulate import SimulationConfig, generate

    pool = work / "sim_pool"
    if not (pool / "simulation.json").exists():
        generate(SimulationConfig(n=16, variants_per_field=1, seed=SIM_POOL_SEED, cache_dir=cache), pool)
    tests = []
    for dose, df in sim_conditions(quick):
        d = work / "sim_test" / f"dose{dose:g}_df{df:g}"
        if not (d / "simulation.json").exists():
            generate(SimulationConfig(n=8, variants_per_field=1, seed=SIM_TEST_SEED, cache_dir=cache,
                                      dose_values=(dose,), defocus_values=(df,)), d)
        tests.append(d)
    pairs = [(p, pool / "masks" / f"{p.stem}.png") for p in sorted((pool / "images").iterdir())]
    return pairs, tests


def link_pairs(folder: Path, pairs: list[tuple[Path, Path]]) -> Path:
    """``folder/images`` + ``folder/masks`` as symlinks to ``pairs`` (a fresh folder)."""
    shutil.rmtree(folder, ignore_errors=True)
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    for img, mask in pairs:
        (folder / "images" / img.name).symlink_to(img.resolve())
        (folder / "masks" / mask.name).symlink_to(mask.resolve())
    return folder


def draw(pool: list, n: int, seed: int) -> list:
    """Seed ``seed``'s ``n`` images: a prefix of its own shuffled pool (1 inside 2 inside 4)."""
    order = list(pool)
    random.Random(1000 + seed).shuffle(order)
    return order[:n]


# ------------------------------------------------------------------------------------------------ bases
def split_base(label: str) -> tuple[str, float, bool]:
    """``NAME[+rescale][@F]`` -> (NAME, F, rescale): fine-tune NAME with its pretrained parameters at F x the learning
    rate (``TrainConfig.base_lr_factor``) and, with ``+rescale``, its kernels rescaled to their initial norm
    (``TrainConfig.base_rescale``); a plain NAME -> (NAME, 1.0, False). The label names the row, so all can be
    compared."""
    head, _, factor = label.partition("@")
    name, plus, option = head.partition("+")
    if plus and (option != "rescale" or name == "scratch"):
        raise SystemExit(f"error: base {label!r}: the only option after + is rescale, for a pretrained base")
    if not factor:
        return name, 1.0, bool(plus)
    try:
        f = float(factor)
    except ValueError:
        f = -1.0
    if not 0 < f <= 1 or name == "scratch":
        raise SystemExit(f"error: base {label!r}: give NAME@F with 0 < F <= 1 (the pretrained parameters' share of the "
                         "learning rate) for a pretrained base")
    return name, f, bool(plus)


def base_folder(base: str, target: str, generalist_dir: Path) -> str | None:
    """The checkpoint to fine-tune for ``target`` (None: this base saw the target, the cell is skipped)."""
    base = split_base(base)[0]
    if base == "scratch" or base.startswith("timm:"):
        return base  # scratch, or an ImageNet encoder (never saw a micrograph; checked by usable_bases)
    if base == "generalist":
        d = generalist_dir / f"generalist-minus-{SHORT[target]}"
        if not (d / "model.safetensors").exists():
            raise SystemExit(f"error: {d} is missing; run scripts/recipes/generalist.py --hold-out {target} first")
        return str(d)
    if target in SAW.get(base, ()):
        return None
    from temzoo.paths import bundled_zoo_dir

    d = bundled_zoo_dir() / base
    if not d.is_dir():
        raise SystemExit(f"error: unknown base {base!r}: not scratch, generalist or a bundled zoo folder")
    return str(d)


def usable_bases(bases: list[str]) -> list[str]:
    """``bases`` less the ``timm:NAME`` ones that cannot be had (not cached and the Hub offline: this benchmark
    sets HF_HUB_OFFLINE=1 unless the environment says otherwise), each skipped with its one-line reason."""
    from temzoo.errors import ModelError

    out = []
    for b in bases:
        if split_base(b)[0].startswith("timm:"):
            from temzoo.zoo import timm_base

            try:
                timm_base.fetch(timm_base.parse(split_base(b)[0]))  # downloaded once here, then every run loads it from the cache
            except ModelError as err:
                print(f"skipped base {b}: {err}", flush=True)
                continue
        out.append(b)
    return out


# ------------------------------------------------------------------------------------------------- runs
def score(result: Path, tests: list[Path], px: float | None) -> float:
    """Pooled pixel F1 at 0.5 per test folder, averaged over folders (sim: over conditions)."""
    from temzoo.metrics import evaluate_folders
    from temzoo.predict import PredictOptions
    from temzoo.zoo import load_model

    ck = load_model(str(result))
    f1s = [float(evaluate_folders(ck, d / "images", d / "masks", pixel_size_nm=px,
                                  options=PredictOptions(device="cpu"))["f1"]) for d in tests]
    return sum(f1s) / len(f1s)


def one_run(work: Path, target: str, chosen, tests: list[Path], base: str, base_ref: str, n: int, seed: int,
            minutes: float, validation: str) -> dict:
    from temzoo.train.config import TrainConfig
    from temzoo.train.loop import train

    run = work / "runs" / f"{SHORT[target]}_{base}_{n}_{seed}_{validation}_{minutes:g}"
    data = link_pairs(run / "data", chosen)
    _, lr_factor, rescale = split_base(base)
    cfg = TrainConfig(images=str(data / "images"), masks=str(data / "masks"), base=base_ref,
                      strategy="scratch" if base == "scratch" else "full", minutes=minutes, clock="cpu",
                      cpu_threads=1, device="cpu", seed=seed, validation=validation,
                      base_lr_factor=lr_factor, base_rescale=rescale, **SETTINGS.get(target, {}))
    t0, w0 = time.process_time(), time.perf_counter()
    result = train(cfg, run / "work", out=run / "result", log=lambda m: None)
    cpu_train = time.process_time() - t0
    prov = json.loads((result / "temzoo.json").read_text())["provenance"]
    f1 = score(result, tests, SETTINGS.get(target, {}).get("pixel_size_nm"))
    shutil.rmtree(run, ignore_errors=True)  # runs are not kept: the JSON holds what was measured
    return {"target": target, "base": base, "base_folder": base_ref, "n_labelled": n, "seed": seed,
            "minutes": minutes, "validation": validation, "f1": round(f1, 4),
            "train_images": [p.stem for p, _ in chosen], "epochs": prov.get("epochs_run"),
            "best_epoch": prov.get("best_epoch"), "stopped": prov.get("stopped"), "split": prov.get("split"),
            "cpu_s_train": round(cpu_train, 1), "cpu_s_total": round(time.process_time() - t0, 1),
            "wall_s": round(time.perf_counter() - w0, 1)}


def zero_shot(work: Path, target: str, pool, base: str, base_ref: str) -> dict | None:
    """The base before any fine-tuning on ``pool`` (the target's labelled non-test images), prepared as a fine-tune
    prepares them: pooled pixel F1 of each of its classes (argmax; a one-class base at 0.5), the best one, and
    "all foreground" on the same pixels. None for a base that does not segment (a denoiser)."""
    import numpy as np

    from temzoo.train.config import TrainConfig
    from temzoo.train.headmatch import class_scores
    from temzoo.train.loop import base_class_maps, build_setup
    from temzoo.zoo import load_model

    ck = load_model(base_ref)
    if ck.meta.task != "segmentation":
        return None
    data = link_pairs(work / "zero_shot" / SHORT[target], pool)
    # Strategy scratch: the samples are prepared by the base's norm and scale all the same, and build_setup skips the
    # head matching that would run the base over the same images a second time.
    cfg = TrainConfig(images=str(data / "images"), masks=str(data / "masks"), base=base_ref, strategy="scratch",
                      device="cpu", cpu_threads=1, validation="none", **SETTINGS.get(target, {}))
    samples = build_setup(cfg, log=lambda m: None).train
    maps = base_class_maps(cfg, ck, ck.spec, samples)
    if maps[0].shape[0] == 1:  # a one-class base: its foreground probability against the rest
        maps = [np.concatenate([1 - m, m]) for m in maps]
    f1s, trivial = class_scores(maps, [s.mask for s in samples])
    best = int(np.argmax(f1s[1:])) + 1
    names = list(getattr(ck.meta, "class_names", None) or [])
    return {"target": target, "base": base, "base_folder": base_ref, "images": [p.stem for p, _ in pool],
            "best_class": names[best] if best < len(names) else f"class {best}", "f1": round(f1s[best], 4),
            "f1_all_foreground": round(trivial, 4), "f1_per_class": [round(f, 4) for f in f1s]}


def run_zero_shot(a, work: Path, gdir: Path, targets: list[str], bases: list[str]) -> int:
    rows = []
    # NAME, NAME+rescale and NAME@F are one base before fine-tuning: score each once. Scratch and timm:NAME have no
    # trained head to score.
    names = [n for n in dict.fromkeys(split_base(b)[0] for b in bases) if n != "scratch" and not n.startswith("timm:")]
    for t in targets:
        pool = sim_split(work, a.cache or str(work / "cache"), a.quick)[0] if t == "sim" else real_split(t)[0]
        for name in names:
            ref = base_folder(name, t, gdir)
            row = zero_shot(work, t, pool, name, ref) if ref is not None else None
            if row is not None:
                rows.append(row)
    lines = ["| target | base | best class | pixel F1 (pool images) | all foreground |", "|---|---|---|---|---|"]
    lines += [f"| {r['target']} | {r['base']} | {r['best_class']} | {r['f1']:.3f} | {r['f1_all_foreground']:.3f} |"
              for r in rows]
    print("\n".join(lines))
    (work / "zero_shot.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    return 0


# ---------------------------------------------------------------------------------------------- summary
def summarise(rows: list[dict]) -> dict:
    """{(target, validation, n, base): {"mean", "sd", "f1s", "seeds", "diff_mean", "diff_sd"}}; diffs are paired
    with scratch on the same seed (and so the same images)."""
    out: dict = {}
    keys = {(r["target"], r["validation"], r["n_labelled"], r["base"]) for r in rows}
    for key in sorted(keys, key=str):
        t, v, n, b = key
        rs = sorted((r for r in rows if (r["target"], r["validation"], r["n_labelled"], r["base"]) == key),
                    key=lambda r: r["seed"])
        f1s = [r["f1"] for r in rs]
        cell = {"mean": statistics.fmean(f1s), "sd": statistics.stdev(f1s) if len(f1s) > 1 else 0.0, "f1s": f1s,
                "seeds": [r["seed"] for r in rs]}
        scratch = {r["seed"]: r["f1"] for r in rows
                   if (r["target"], r["validation"], r["n_labelled"], r["base"]) == (t, v, n, "scratch")}
        diffs = [r["f1"] - scratch[r["seed"]] for r in rs if r["seed"] in scratch]
        if b != "scratch" and diffs:
            cell["diff_mean"] = statistics.fmean(diffs)
            cell["diff_sd"] = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        out[key] = cell
    return out


def table(rows: list[dict], header: str) -> str:
    s = summarise(rows)
    sizes = sorted({k[2] for k in s})
    lines = [header, "", "| target | validation | base | " + " | ".join(f"F1 @ {n} (diff to scratch)" for n in sizes)
             + " |", "|---|---|---|" + "---|" * len(sizes)]
    for t in TARGETS:
        for v in sorted({k[1] for k in s if k[0] == t}):
            for b in sorted({k[3] for k in s if k[0] == t and k[1] == v}, key=lambda b: (b != "scratch", b)):
                cells = []
                for n in sizes:
                    c = s.get((t, v, n, b))
                    if c is None:
                        cells.append("")
                        continue
                    txt = f"{c['mean']:.3f} ± {c['sd']:.3f}"
                    if "diff_mean" in c:
                        txt += f" ({c['diff_mean']:+.3f} ± {c['diff_sd']:.3f})"
                    cells.append(txt)
                lines.append(f"| {t} | {v} | {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evidence(rows: list[dict], protocol: dict, validation: str) -> dict:
    """The per-target summary the library reads (temzoo.zoo.registry.recommended_base): for each kind of image and
    number of labelled images, every base's mean/sd/difference to scratch and the winner."""
    s = summarise([r for r in rows if r["validation"] == validation])
    targets = {}
    for t in TARGETS:
        by_n = {}
        for n in sorted({k[2] for k in s if k[0] == t}):
            cells = {k[3]: {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in c.items()}
                     for k, c in s.items() if k[0] == t and k[2] == n}
            winner = max(cells, key=lambda b: cells[b]["mean"])
            by_n[str(n)] = {"bases": cells, "winner": winner}
        if by_n:
            targets[t] = {**KIND[t], "results": by_n}
    return {"protocol": protocol, "validation": validation, "targets": targets}


# ------------------------------------------------------------------------------------------------- main
def machine() -> str:
    import platform

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared), torch "
            f"{torch.__version__}, one training thread per run, no GPU used")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="about 30 CPU-minutes: see the module docstring")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--sizes", default="1,2,4")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--bases", default=None, help="default scratch,generalist,hrtem-nanoparticle,tem-denoise "
                                                  "(quick: scratch,generalist); also timm:NAME (an ImageNet encoder, "
                                                  "e.g. timm:resnet18: needs HF_HUB_OFFLINE=0 and the Hub, or the "
                                                  "HF cache; skipped with the reason otherwise); NAME@F fine-tunes "
                                                  "NAME with its pretrained parameters at F x the learning rate")
    ap.add_argument("--minutes", type=float, default=None, help="CPU-minutes per run (default 2; quick 0.3)")
    ap.add_argument("--validation", default="regions", choices=("regions", "image", "none"))
    ap.add_argument("--compare-validation", default=None,
                    help="also run this validation scheme at the largest size (quick: image)")
    ap.add_argument("--generalist-dir", default=None,
                    help="folder holding generalist-minus-<target>/ (default $TEMZOO_HOME/recipes/generalist)")
    ap.add_argument("--work", default=None, help="scratch folder (default $TEMZOO_HOME/bench/transfer)")
    ap.add_argument("--cache", default=None, help="exit-wave cache for the simulated set")
    ap.add_argument("--json", default=None, help="all runs (default <work>/bench_transfer.json)")
    ap.add_argument("--evidence", default=None, help="write the per-target summary here (e.g. "
                                                     "temzoo/zoo/transfer_evidence.json)")
    ap.add_argument("--zero-shot", action="store_true",
                    help="fine-tune nothing: score each base as it is on the targets' pool images (see above)")
    ap.add_argument("--limit", type=int, default=None, help="stop after this many new runs (smoke tests)")
    a = ap.parse_args(argv)
    a.bases = a.bases or ("scratch,generalist" if a.quick else "scratch,generalist,hrtem-nanoparticle,tem-denoise")
    a.minutes = a.minutes or (0.3 if a.quick else 2.0)
    if a.quick and a.compare_validation is None:
        a.compare_validation = "image"
    return a


def main(argv=None) -> int:
    from temzoo.paths import home

    a = parse_args(argv)
    work = Path(a.work) if a.work else home() / "bench" / "transfer"
    work.mkdir(parents=True, exist_ok=True)
    gdir = Path(a.generalist_dir) if a.generalist_dir else home() / "recipes" / "generalist"
    out_json = Path(a.json) if a.json else work / "bench_transfer.json"
    done = work / "runs.jsonl"  # every finished run; a rerun skips them (same key)
    rows = [json.loads(x) for x in done.read_text().splitlines() if x.strip()] if done.exists() else []
    targets, sizes = a.targets.split(","), [int(x) for x in a.sizes.split(",")]
    seeds, bases = [int(x) for x in a.seeds.split(",")], usable_bases(a.bases.split(","))
    for t in targets:
        if t not in TARGETS:
            raise SystemExit(f"error: unknown target {t!r}; choose from {', '.join(TARGETS)}")
    if a.zero_shot:
        return run_zero_shot(a, work, gdir, targets, bases)
    # Seed-major order, the comparison scheme last: a run cut short still covers every cell with fewer seeds.
    plan = [(t, n, s, b, a.validation) for s in seeds for t in targets for n in sizes for b in bases]
    if a.compare_validation and a.compare_validation != a.validation:
        plan += [(t, max(sizes), s, b, a.compare_validation) for s in seeds for t in targets for b in bases]
    data: dict = {}  # target -> (pool, test folders), prepared on first use
    new = 0
    for (t, n, s, b, v) in plan:
        key = (t, b, n, s, v, a.minutes)
        if any((r["target"], r["base"], r["n_labelled"], r["seed"], r["validation"], r["minutes"]) == key
               for r in rows):
            continue
        ref = base_folder(b, t, gdir)
        if ref is None:
            continue
        if a.limit is not None and new >= a.limit:
            break
        if t not in data:
            if t == "sim":
                data[t] = sim_split(work, a.cache or str(work / "cache"), a.quick)
            else:
                pool, test_pairs = real_split(t)
                data[t] = (pool, [link_pairs(work / f"{SHORT[t]}_test", test_pairs)])
        pool, tests = data[t]
        r = one_run(work, t, draw(pool, n, s), tests, b, ref, n, s, a.minutes, v)
        rows.append(r)
        new += 1
        with open(done, "a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"{t:24s} {b:12s} n={n} seed={s} {v:8s}: F1 {r['f1']:.3f} ({r['epochs']} epochs, best "
              f"{r['best_epoch']}, {r['cpu_s_total']:.0f} CPU-s)", flush=True)
        if new % 6 == 0:  # a partial table on disk while a long run goes on
            _write(a, rows, targets, bases, sizes, seeds, out_json, argv, quiet=True)
    _write(a, rows, targets, bases, sizes, seeds, out_json, argv)
    return 0


def _write(a, rows, targets, bases, sizes, seeds, out_json: Path, argv, quiet: bool = False) -> None:
    """Print (unless ``quiet``) and write the table, the JSON of runs and the evidence file."""
    mine = [r for r in rows if r["minutes"] == a.minutes and r["target"] in targets and r["base"] in bases
            and r["n_labelled"] in sizes and r["seed"] in seeds]
    protocol = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "minutes_cpu_per_run": a.minutes,
                "seeds": sorted({r["seed"] for r in mine}), "sizes": sizes, "bases": bases, "quick": a.quick,
                "sim_conditions": sim_conditions(a.quick) if "sim" in targets else None,
                "test": f"real sets: last {N_TEST} images by name; sim: 8 unseen fields (seed {SIM_TEST_SEED}) per "
                        "condition", "command": "python -m bench.bench_transfer " + " ".join(argv or [])}
    header = (f"Leave-one-set-out transfer, pooled pixel F1 on unseen test images, mean ± sd over seeds "
              f"{','.join(map(str, protocol['seeds']))} ({'QUICK: ' if a.quick else ''}{a.minutes:g} CPU-min per "
              f"run, one thread; {machine()})")
    text = table(mine, header)
    if not quiet:
        print("\n" + text)
    out_json.write_text(json.dumps({"protocol": protocol, "runs": mine, "table": text}, indent=1))
    if a.evidence:
        Path(a.evidence).write_text(json.dumps(evidence(mine, protocol, a.validation), indent=1) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
