"""Recipe (e): the large generalist base (network size ``large``, a full-depth ResNet-18 U-Net, 14.3 M parameters),
trained in resumable chunks so that GPU time can be spread over several short sessions.

    # once: write the training set (the generalist recipe's multi-class set) where the GPU machine can read it
    python scripts/recipes/large_base.py --build-set-only --work .gpu/large-base
    # each session: about 10 minutes of training, continuing from the work folder's last state
    python scripts/recipes/large_base.py --work .gpu/large-base --total-minutes 60 --minutes 10 --resume
    # when the total budget is used up, the chunk that ends it publishes --out (default <work>/generalist-tem-large)

A chunk trains until ``--minutes`` of wall time have passed (the epoch under way is dropped: ``last/`` stays at an
epoch boundary, so keep epochs short with ``--steps-per-epoch``) or the ``--total-minutes`` budget is used up; the
cosine learning-rate schedule spans the total budget, and the state (weights, AdamW moments, epoch, best score, time
spent) lives in ``<work>/run/last``. ``--resume`` continues it with the configuration the first chunk wrote to
``<work>/recipe.json`` (only the device may change between chunks); without ``--resume`` an existing run is refused
(``--fresh`` starts over). Every chunk is logged to ``<work>/chunks.jsonl`` (device, seconds, epochs) and the card
lists them: where and how long the base trained. On a CPU it runs too (about 0.8 CPU-s per step of 8 x 128^2 tiles,
one thread: docs/ZOO_SIZES.md). ``--init timm:resnet18`` starts from ImageNet weights (the large encoder is timm's
ResNet-18) instead of scratch; any zoo reference of the large size works too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from _common import machine, md_table, publish, timed, work_dir

from temzoo.validate import arg_number

STATE_FILES = ("recipe.json", "chunks.jsonl", "run")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None, help="work folder (default $TEMZOO_HOME/recipes/large-base)")
    ap.add_argument("--set", default=None, help="training folder with images/ and masks/ (default: <work>/set, "
                                                "built from the generalist recipe's set when missing)")
    ap.add_argument("--build-set-only", action="store_true", help="write <work>/set and stop")
    ap.add_argument("--hold-out", default="none", help="as generalist.py --hold-out (building the set)")
    ap.add_argument("--per-family", type=int, default=40, help="as generalist.py --per-family (building the set)")
    ap.add_argument("--cache", default=None, help="exit-wave cache for the simulated HRTEM images (building the set)")
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-clock minutes of this chunk (default 10)")
    ap.add_argument("--total-minutes", type=float, default=60.0,
                    help="training budget over all chunks, in minutes of training time (default 60)")
    ap.add_argument("--resume", action="store_true", help="continue the run in --work")
    ap.add_argument("--fresh", action="store_true", help="discard the run in --work and start over")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--cpu-threads", type=arg_number(1, 1024, integer=True), default=None,
                    help="CPU threads of this chunk (default: the cores idle by the 1-minute load average, which "
                         "still counts the set-building just before, so a chunk may start on fewer)")
    ap.add_argument("--init", default="scratch", help="scratch (default), timm:resnet18 or a large zoo base")
    ap.add_argument("--steps-per-epoch", type=int, default=100, help="steps between validations/saves")
    ap.add_argument("--tile-size", type=int, default=None, help="default 256 on CUDA, 128 on a CPU")
    ap.add_argument("--batch-size", type=int, default=None, help="default 16 on CUDA, 8 on a CPU")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="published base (default <work>/generalist-tem-large)")
    ap.add_argument("--weights", default="float16", choices=("float16", "float32"),
                    help="dtype of the published weights (default float16: half the bytes, 29 MB instead of 57; "
                         "loading casts them back to float32)")
    ap.add_argument("--publish-only", action="store_true",
                    help="publish the finished run in --work again (for example with --card-md) and stop")
    ap.add_argument("--card-md", default=None,
                    help="markdown file appended to the card (for example the transfer numbers measured by "
                         "bench/bench_transfer.py)")
    return ap.parse_args(argv)


def training_set(args, work: Path) -> tuple[Path, list[str] | None, dict]:
    """The labelled folder (given, or the generalist recipe's set written once to <work>/set)."""
    if args.set:
        folder = Path(args.set)
        if not (folder / "images").is_dir() or not (folder / "masks").is_dir():
            raise SystemExit(f"error: --set {folder} needs images/ and masks/ folders")
        return folder, None, {"set": str(folder)}
    folder = work / "set"
    summary_file = work / "set.json"
    if not (folder / "images").is_dir() or not summary_file.exists():
        import generalist  # the generalist recipe owns the multi-class set (same folder as this script)

        built, summary = generalist.build_set(work, args.hold_out, args.per_family, args.cache or str(work / "cache"))
        shutil.rmtree(folder, ignore_errors=True)
        built.rename(folder)
        summary_file.write_text(json.dumps(summary))
    from temzoo.simulate.bftem import CLASS_NAMES

    return folder, list(CLASS_NAMES), json.loads(summary_file.read_text())


def recipe_config(args, work: Path, folder: Path, class_names: list[str] | None, summary: dict):
    """The TrainConfig: written by the first chunk to recipe.json, read back by every --resume."""
    from temzoo.device import pick_device
    from temzoo.train.config import TrainConfig

    saved = work / "recipe.json"
    if (args.resume or args.publish_only) and saved.exists():
        cfg = TrainConfig.from_dict(json.loads(saved.read_text())["config"])
        cfg.device = args.device  # the only things a chunk may change: where it runs, and on how many threads
        cfg.cpu_threads = args.cpu_threads
        return cfg.validate()
    cuda = pick_device(args.device).type == "cuda"
    scratch = args.init == "scratch"
    saw = ", ".join(f"{k} ({v if isinstance(v, int) else sum(v.values()) if isinstance(v, dict) else v})"
                    for k, v in summary.items())
    cfg = TrainConfig(
        images=str(folder / "images"), masks=str(folder / "masks"), base=args.init,
        strategy="scratch" if scratch else "full", size="large" if scratch else None,
        minutes=args.total_minutes, clock="wall", device=args.device, cpu_threads=args.cpu_threads, seed=args.seed,
        tile_size=args.tile_size or (256 if cuda else 128), batch_size=args.batch_size or (16 if cuda else 8),
        steps_per_epoch=args.steps_per_epoch, validation="regions", val_fraction=0.1, patience=1000,
        class_names=class_names, downsample=1.0,
        description=f"Large generalist TEM base (full-depth ResNet-18 U-Net): multi-class pretraining on {saw}. "
                    "A base for fine-tuning (its head is replaced for a new task).").validate()
    saved.write_text(json.dumps({"config": cfg.to_dict(), "summary": summary, "argv": sys.argv[1:],
                                 "hold_out": args.hold_out}, indent=1))
    return cfg


def guard(args, work: Path) -> None:
    """Never start over on top of an earlier run unless asked to."""
    run = work / "run"
    if args.fresh:
        for name in STATE_FILES:
            p = work / name
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    elif not args.resume and (run / "last").exists():
        raise SystemExit(f"error: {run} holds an earlier run: pass --resume to continue it, or --fresh to start over")


def run_chunk(cfg, work: Path, minutes: float, resume: bool) -> dict:
    """Train until this chunk's wall-clock minutes are up or the total budget is used; returns the chunk record."""
    from temzoo.train.loop import train

    deadline = time.monotonic() + minutes * 60
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    before = _epochs_done(work)
    t0 = time.monotonic()
    epochs: list[dict] = []
    # Every chunk finishes at least one epoch (so a chunk shorter than the setup still moves the run forward).
    result = train(cfg, work / "run", out=work / "result", resume=resume, on_epoch=epochs.append,
                   should_stop=lambda: bool(epochs) and time.monotonic() > deadline,
                   log=lambda m: print("  " + m, flush=True))
    prov = json.loads((result / "temzoo.json").read_text())["provenance"]
    record = {"started": started,
              "device": prov.get("device_name") or prov.get("device"), "wall_seconds": round(time.monotonic() - t0, 1),
              "epochs": [before, _epochs_done(work)], "training_seconds_total": prov.get("seconds"),
              "stopped": prov.get("stopped")}
    with open(work / "chunks.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def _epochs_done(work: Path) -> int:
    state = work / "run" / "last" / "state.json"
    return int(json.loads(state.read_text())["info"]["epoch"]) if state.exists() else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.card_md and not Path(args.card_md).is_file():
        raise SystemExit(f"error: --card-md {args.card_md} is not a file; give the markdown file to append")
    work = work_dir("large-base", args.work)
    log: dict = {}
    with timed("training set", log):
        folder, class_names, summary = training_set(args, work)
    if args.build_set_only:
        n = len(list((folder / "images").iterdir()))
        print(json.dumps({"set": str(folder), "images": n, "summary": summary}))
        return 0
    if args.publish_only:
        if not (work / "recipe.json").exists() or not (work / "result" / "temzoo.json").exists():
            raise SystemExit(f"error: {work} holds no finished run to publish; train it first")
        cfg = recipe_config(args, work, folder, class_names, summary)
        out = Path(args.out) if args.out else work / "generalist-tem-large"
        publish_base(work, out, cfg, args)
        print(json.dumps({"published": str(out)}))
        return 0
    guard(args, work)
    cfg = recipe_config(args, work, folder, class_names, summary)
    with timed(f"chunk of {args.minutes:g} min (total budget {cfg.minutes:g} min)", log):
        chunk = run_chunk(cfg, work, args.minutes, args.resume)
    if chunk["stopped"] == "cancelled":
        print(json.dumps({"chunk": chunk, "next": "run again with --resume to continue",
                          "result_so_far": str(work / "result")}))
        return 0
    out = Path(args.out) if args.out else work / "generalist-tem-large"
    publish_base(work, out, cfg, args)
    print(json.dumps({"chunk": chunk, "published": str(out)}))
    return 0


def publish_base(work: Path, out: Path, cfg, args: argparse.Namespace) -> None:
    """The finished run as a zoo folder whose card lists every chunk: where and how long it trained."""
    chunks = [json.loads(x) for x in (work / "chunks.jsonl").read_text().splitlines() if x.strip()]
    result = work / "result"
    prov = json.loads((result / "temzoo.json").read_text())["provenance"]
    devices = sorted({c["device"] for c in chunks})
    wall = sum(c["wall_seconds"] for c in chunks)
    recipe = json.loads((work / "recipe.json").read_text())
    provenance = {
        "tags": ["bf-tem", "hrtem", "generalist", "multi-task", "pretrained", "base", "large"],
        "trained_on": devices, "chunks": len(chunks), "weights_dtype": args.weights,
        "held_out": recipe.get("hold_out", args.hold_out),
        "limitations": (f"Trained {prov.get('epochs_run')} epochs, {prov.get('seconds', 0) / 60:.1f} minutes of "
                        f"training in {len(chunks)} chunk(s) ({wall / 60:.1f} wall-minutes) on "
                        f"{' and '.join(devices)}; built by {machine()}. Whether it transfers is measured by "
                        "bench/bench_transfer.py, not assumed."),
        "recipe": "scripts/recipes/large_base.py " + " ".join(recipe.get("argv", [])),
    }
    rows = [{"chunk": i + 1, "started": c["started"], "device": c["device"], "wall s": c["wall_seconds"],
             "epochs": f"{c['epochs'][0]}-{c['epochs'][1]}", "stopped": c["stopped"]} for i, c in enumerate(chunks)]
    extra = "## Training chunks (scripts/recipes/large_base.py)\n\n" + md_table(
        rows, ["chunk", "started", "device", "wall s", "epochs", "stopped"])
    held = provenance["held_out"]
    if held != "none":
        extra += (f"\nHeld out: no image of `{held}`, labelled or not, was in its training set, so that "
                  "bench/bench_transfer.py can measure its transfer to that kind of image.\n")
    if args.weights == "float16":
        extra += ("\nThe weights are stored as float16 (half the bytes); loading casts them back to float32, which "
                  "changes no prediction by more than float16's rounding.\n")
    if args.card_md:
        extra += "\n" + Path(args.card_md).read_text()
    publish(result, out, provenance=provenance, extra_md=extra, float16=args.weights == "float16",
            eval_json={"validation": prov.get("metrics"), "chunks": chunks, "config": cfg.to_dict()})


if __name__ == "__main__":
    sys.exit(main())
