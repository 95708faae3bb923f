"""Recipe (d): a generalist TEM base: supervised multi-task pretraining over real labelled sets + procedural
BF-TEM-like families (+ simulated HRTEM), one class per kind of structure.

    python scripts/recipes/generalist.py --hold-out uo2-grain-boundaries   # -> <work>/generalist-minus-uo2
    python scripts/recipes/generalist.py --hold-out none --out zoo/generalist-tem   # the shipped one: sees all

The training set is written as one multi-class labelled folder: every shared labelled set except the held-out one
(UO2 at half resolution, its recommended scale; class 1 grain boundary, steel class 2 dislocation loop), every
family of ``temzoo.simulate.bftem`` (``--per-family`` images each, 256^2, classes 1-5) and, unless the simulated
HRTEM set is held out, 24 simulated HRTEM images (12 fields of seed 3000, never the benchmark's seeds 1000/2000;
class 4 particle). It starts from ``tem-denoise`` (stage 1: Poisson denoising on the unlabelled real micrographs; or
``--stage1 FOLDER``, another self-supervised base such as masked reconstruction), or from scratch when the simulated
set is held out (tem-denoise saw simulated HRTEM fields). Then ``temzoo.train`` (strategy full, the multi-class head
is new) for ``--minutes`` of process CPU on one thread; validation: a band of every image. Fine-tuning it for a
binary task reinitialises the head and keeps the encoder and decoder.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from _common import bench_module, machine, publish, timed, work_dir

from temzoo.paths import bundled_zoo_dir
from temzoo.zoo.registry import EVIDENCE_FILE

_bt = bench_module("bench_transfer")
REAL, SHORT, real_split = _bt.REAL, _bt.SHORT, _bt.real_split

REAL_CLASS = {"uo2-grain-boundaries": 1, "steel-dislocation-loops": 2}
REAL_SHRINK = {"uo2-grain-boundaries": 2}
SIM_SEED = 3000


def _save_pair(folder: Path, name: str, img: np.ndarray, mask: np.ndarray) -> None:
    from PIL import Image

    a = img.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    Image.fromarray(np.round((a - lo) / max(hi - lo, 1e-9) * 65535).astype(np.uint16)).save(
        folder / "images" / f"{name}.png")
    Image.fromarray(mask.astype(np.uint8)).save(folder / "masks" / f"{name}.png")


def build_set(work: Path, hold_out: str, per_family: int, cache: str) -> tuple[Path, dict]:
    """Write the multi-class training folder; returns it and a summary of what it holds."""
    from temzoo.io import read_micrograph
    from temzoo.io.masks import read_mask
    from temzoo.preprocess import resample
    from temzoo.simulate.bftem import CLASSES, write_families

    folder = work / f"set-minus-{SHORT.get(hold_out, 'none')}"
    shutil.rmtree(folder, ignore_errors=True)
    write_families(folder, per_family, seed=0)
    summary = {"synthetic": {f: per_family for f in CLASSES}}
    for task in REAL:
        if task == hold_out:
            continue
        pool, test = real_split(task)
        for ip, mp in pool + test:  # a set that is not the target trains whole
            img = read_micrograph(ip).frame(0).astype(np.float32)
            mask = (read_mask(mp) > 0).astype(np.float32)
            f = 1.0 / REAL_SHRINK.get(task, 1)
            if f != 1:
                img, mask = resample(img, f, order="bilinear"), resample(mask, f, order="nearest")
            _save_pair(folder, f"{SHORT[task]}-{ip.stem}", img, np.where(mask > 0, REAL_CLASS[task], 0))
        summary[task] = len(pool) + len(test)
    if hold_out != "sim":
        from temzoo.simulate import SimulationConfig, generate

        sim = work / "sim-hrtem"
        if not (sim / "simulation.json").exists():
            generate(SimulationConfig(n=12, variants_per_field=2, seed=SIM_SEED, cache_dir=cache), sim)
        for ip in sorted((sim / "images").iterdir()):
            img = read_micrograph(ip).frame(0).astype(np.float32)
            mask = read_mask(sim / "masks" / f"{ip.stem}.png") > 0
            _save_pair(folder, f"sim-{ip.stem}", img, np.where(mask, CLASSES["particles"], 0))
        summary["simulated HRTEM"] = len(list((sim / "images").iterdir()))
    return folder, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hold-out", required=True, choices=(*REAL, "sim", "none"))
    ap.add_argument("--minutes", type=float, default=3.0, help="process CPU-minutes of training (one thread)")
    ap.add_argument("--per-family", type=int, default=40)
    ap.add_argument("--work", default=None)
    ap.add_argument("--cache", default=None, help="exit-wave cache for the simulated HRTEM images")
    ap.add_argument("--out", default=None, help="default <work>/generalist-minus-<held-out>")
    ap.add_argument("--init", default=None,
                    help="continue from this generalist (same --hold-out): pretraining in stages of short runs")
    ap.add_argument("--stage1", default=None,
                    help="self-supervised first stage to start from instead of the bundled tem-denoise (a "
                         "denoising-task folder from scripts/recipes/tem_denoise.py, e.g. --corruption mask)")
    ap.add_argument("--card-only", action="store_true",
                    help="only re-render --out's card with the current transfer evidence (after bench_transfer)")
    args = ap.parse_args()
    if args.card_only:
        from _common import rewrite_card

        out = Path(args.out)
        rewrite_card(out, model_id=out.name, provenance={},
                     extra_md=transfer_md(EVIDENCE_FILE))
        print(f"card of {out} re-rendered")
        return

    from temzoo.simulate.bftem import CLASS_NAMES
    from temzoo.train.config import TrainConfig
    from temzoo.train.loop import train

    work = work_dir("generalist", args.work)
    log: dict = {}
    short = SHORT.get(args.hold_out, "none")
    init = "scratch" if args.hold_out == "sim" else str(bundled_zoo_dir() / "tem-denoise")
    if args.stage1:
        init = first_stage(Path(args.stage1), args.hold_out, args.init)
    # CPU-minutes and number of earlier stages (--init); each stage takes the next seed, so it draws new tiles.
    earlier, n_stage = 0.0, 0
    if args.init:
        init, earlier, n_stage = continued_from(Path(args.init), args.hold_out)
        if args.out and Path(args.out).resolve() == Path(args.init).resolve():
            raise SystemExit(f"error: --out {args.out} is the --init stage itself; give a new --out, so the earlier "
                             "stage stays as it is")
    with timed("build the training set", log):
        folder, summary = build_set(work, args.hold_out, args.per_family, args.cache or str(work / "cache"))
    saw = ", ".join(f"{k} ({v if isinstance(v, int) else sum(v.values())} images)" for k, v in summary.items())
    held = "nothing held out" if args.hold_out == "none" else f"held out: {args.hold_out} (no image of it seen)"
    desc = (f"Generalist TEM base: multi-class pretraining on {saw}; {held}. A base for fine-tuning (its head has one "
            "class per kind of structure and is replaced when fine-tuning a binary task).")
    cfg = TrainConfig(images=str(folder / "images"), masks=str(folder / "masks"), base=init,
                      strategy="scratch" if init == "scratch" else "full", minutes=args.minutes, clock="cpu",
                      seed=n_stage, cpu_threads=1, device="cpu", validation="regions", val_fraction=0.1, patience=1000,
                      class_names=list(CLASS_NAMES), downsample=1.0, description=desc)
    with timed(f"pretrain ({args.minutes:g} CPU-min, from {Path(init).name})", log):
        run = work / f"run-minus-{short}"
        shutil.rmtree(run, ignore_errors=True)
        result = train(cfg, run, out=work / f"result-minus-{short}", log=lambda m: print("  " + m, flush=True))
    meta = json.loads((result / "temzoo.json").read_text())
    prov = meta["provenance"]
    out = Path(args.out) if args.out else work / f"generalist-minus-{short}"
    model_id = out.name
    total = earlier + args.minutes
    provenance = {
        "training_data": saw + f"; {held}",
        "held_out": args.hold_out,
        "acquisition": "mixed: bright-field TEM (real UO2/steel, procedural families at random feature scale 0.5-2, "
                       "dose 20-2000 counts/px, blur, contrast sign, diffraction contrast) and simulated HRTEM at 0.05 nm/px",
        "tags": ["bf-tem", "hrtem", "generalist", "multi-task", "pretrained", "base"],
        "pretrain_cpu_minutes": total,
        "pretrain_stages": n_stage + 1,
        "limitations": (f"Trained {total:g} CPU-minutes on one thread in {n_stage + 1} stage(s) "
                        f"(the last: {prov.get('epochs_run')} epochs in {args.minutes:g} CPU-minutes) "
                        f"({machine()}): a short CPU run. Uncalibrated (own-scale) images; the procedural families "
                        "are not physics (no multislice for BF contrast). Whether it helps is measured by "
                        "bench/bench_transfer.py (leave-one-set-out); see docs/PRETRAINING_STUDY.md."),
        "recipe": f"scripts/recipes/generalist.py --hold-out {args.hold_out} --minutes {args.minutes:g} "
                  f"--per-family {args.per_family}" + (f" --init <the {earlier:g}-CPU-minute stage>" if earlier else "")
                  + (f" --stage1 <{Path(args.stage1).name}>" if args.stage1 else ""),
        "recipe_seconds": log,
    }
    publish(result, out, provenance=provenance, eval_json={"validation": prov.get("metrics"), "seconds": log},
            extra_md=transfer_md(EVIDENCE_FILE))
    print(json.dumps({"out": str(out), "epochs": prov.get("epochs_run"), "val": prov.get("metrics"), "seconds": log}))


def first_stage(folder: Path, hold_out: str, init: str | None) -> str:
    """``--stage1``: a self-supervised (denoising-task) base of tem_denoise.py. It saw simulated HRTEM fields, so it
    cannot start a base that holds the simulated set out, and ``--init`` already carries its own first stage."""
    if init:
        raise SystemExit("error: --stage1 starts a first generalist stage; --init continues one that already has its "
                         "own first stage. Give one of them")
    if hold_out == "sim":
        raise SystemExit("error: --stage1 bases (tem_denoise.py) saw simulated HRTEM fields, so they cannot start a "
                         "base that holds out sim; leave --stage1 out (it starts from scratch)")
    from temzoo.errors import TemzooError
    from temzoo.zoo.meta import read_meta

    try:  # a hand-edited or broken folder is refused in one line, like any other
        task = read_meta(folder).task if folder.is_dir() else None
    except TemzooError:
        task = None
    if task != "denoising":
        raise SystemExit(f"error: --stage1 {folder} is not a self-supervised base (task {task!r}); give the --out of "
                         "scripts/recipes/tem_denoise.py")
    return str(folder)


def continued_from(folder: Path, hold_out: str) -> tuple[str, float, int]:
    """(folder, CPU-minutes, number of stages) of an earlier stage: a generalist with the same target held out."""
    import re

    from temzoo.errors import TemzooError
    from temzoo.zoo.meta import read_meta

    if not (folder / "temzoo.json").is_file():
        raise SystemExit(f"error: --init {folder} is not a model folder (no temzoo.json); give an earlier stage's "
                         "--out")
    try:  # the project's validated reader: a hand-edited or broken file is refused in one line
        prov = read_meta(folder).provenance
    except TemzooError as err:
        raise SystemExit(f"error: --init {folder}: {err}") from None
    if prov.get("held_out") != hold_out:
        raise SystemExit(f"error: --init {folder} held out {prov.get('held_out')!r}, not {hold_out!r}: continuing it "
                         "would show the target to the base; give the stage with the same --hold-out")
    minutes = prov.get("pretrain_cpu_minutes")
    if minutes is None:  # a first stage written before the field existed: its recipe line says its budget
        m = re.search(r"--minutes ([0-9.]+)", str(prov.get("recipe", "")))
        minutes = float(m.group(1)) if m else 0.0
    stages = prov.get("pretrain_stages", 1)
    # The card adds these up, so a hand-edited value is refused rather than carried into the next stage's card.
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 <= minutes < float("inf") \
            or isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
        raise SystemExit(f"error: --init {folder}: its provenance gives pretrain_cpu_minutes {minutes!r} and "
                         f"pretrain_stages {stages!r}; expected minutes >= 0 and stages >= 1: give an earlier "
                         "stage's --out as the recipe wrote it")
    return str(folder), float(minutes), stages


def transfer_md(evidence: Path) -> str:
    """The card's transfer section from bench_transfer's evidence file (empty until it exists)."""
    if not evidence.exists():
        return "## Transfer\n\nNot measured yet: run `python -m bench.bench_transfer`.\n"
    ev = json.loads(evidence.read_text())
    p = ev["protocol"]
    lines = ["## Transfer (leave-one-set-out, bench/bench_transfer.py)", "",
             f"Each target fine-tuned from the generalist recipe with that target held out, against scratch: "
             f"{p['minutes_cpu_per_run']:g} CPU-minutes per run, seeds {p['seeds']}, validation "
             f"{ev['validation']}, {p['machine']}, {p['date']}{' (quick mode)' if p.get('quick') else ''}. "
             "Pooled pixel F1 on unseen test images, mean ± sd; in brackets the difference to scratch.", "",
             "| target | labelled | scratch | generalist |", "|---|---|---|---|"]
    for t, info in ev["targets"].items():
        for n, cell in info["results"].items():
            s, g = cell["bases"].get("scratch"), cell["bases"].get("generalist")
            if s and g:
                lines.append(f"| {t} | {n} | {s['mean']:.3f} ± {s['sd']:.3f} | {g['mean']:.3f} ± {g['sd']:.3f} "
                             f"({g.get('diff_mean', 0):+.3f}) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
