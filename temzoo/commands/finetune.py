"""`python -m temzoo finetune`: fine-tune a zoo model (or train from scratch) on a few labelled images.

Writes a checkpoint folder (config.json, model.safetensors, temzoo.json, README.md card) plus ``metrics.jsonl`` to
``--out``; the folder then works as ``--model`` for predict/evaluate and as ``--base`` for another fine-tune.
"""

from __future__ import annotations

import argparse

from temzoo.commands._args import add_overwrite_argument, add_pixel_size_argument
from temzoo.train.config import DOWNSAMPLE_RANGE, LR_MAX, SIZES, STRATEGIES, VALIDATIONS
from temzoo.validate import arg_number, arg_seed


def add_training_arguments(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Budget, pixel size, seed, device and the advanced options every training command shares (finetune,
    pretrain-denoise); returns the "advanced" group for a command's own additions."""
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=arg_number(1, 100_000, integer=True), help="number of epochs (default 30 when no budget is given)")
    budget.add_argument("--minutes", type=arg_number(0, 525_600, lo_open=True), help="time budget in minutes (wall clock unless --clock cpu)")
    add_pixel_size_argument(p)
    p.add_argument("--seed", type=arg_seed, default=0, help="random seed, 0 .. 2**32-1 (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--size", choices=("auto", *SIZES), default="auto",
                   help="network when training from scratch: small (0.88 M parameters, the CPU default) or large "
                        "(full-depth ResNet-18 U-Net, 14.3 M, the CUDA default); auto: by --device. A base brings "
                        "its own network")
    adv = p.add_argument_group("advanced")
    adv.add_argument("--tile-size", type=arg_number(16, 8192, integer=True), help="training tile edge in pixels (default 128)")
    adv.add_argument("--batch-size", type=arg_number(1, 4096, integer=True), help="tiles per step (default 8)")
    adv.add_argument("--lr", type=arg_number(0, LR_MAX, lo_open=True), help="peak learning rate (default 3e-3)")
    adv.add_argument("--base-lr-factor", type=arg_number(0, 1, lo_open=True),
                     help="parameters loaded from the base train at this share of the learning rate, new ones at all "
                          "of it (default 1: one rate)")
    adv.add_argument("--base-rescale", action="store_true", default=None,
                     help="rescale the base's kernels that feed BatchNorm to their initial norm: the base computes "
                          "the same but learns as fast as a fresh network (docs/PRETRAINING_STUDY.md section 8)")
    adv.add_argument("--downsample", type=arg_number(DOWNSAMPLE_RANGE[0], DOWNSAMPLE_RANGE[1]),
                     help="shrink images by this factor when the base does not fix the pixel size (default 1)")
    adv.add_argument("--clock", choices=("wall", "cpu"),
                     help="what --minutes measures: wall time (default) or this process's CPU time")
    adv.add_argument("--workdir", help="keep the working folder (resume state, best/, log) here")
    adv.add_argument("--resume", action="store_true", help="continue an interrupted run from --workdir")
    add_overwrite_argument(p)
    adv.add_argument("--quiet", action="store_true", help="no progress bar")
    return adv


def training_kwargs(args: argparse.Namespace, extra: tuple[str, ...] = ()) -> dict:
    """TrainConfig keywords from the shared options (advanced ones only when given, so defaults stay in one place)."""
    kw = {"epochs": args.epochs, "minutes": args.minutes, "pixel_size_nm": args.pixel_size_nm, "seed": args.seed,
          "device": args.device, "size": None if args.size == "auto" else args.size}
    for name in ("tile_size", "batch_size", "lr", "base_lr_factor", "base_rescale", "downsample", "clock", *extra):
        v = getattr(args, name, None)
        if v is not None:
            kw[name] = v
    return kw


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, help="folder of micrographs (PNG, JPEG, TIFF, DM3/DM4, ...)")
    p.add_argument("--masks", required=True,
                   help="folder of masks matched by file stem (0/255 or class index), a COCO .json, or a YOLO-seg folder")
    p.add_argument("--base", required=True,
                   help="zoo id, checkpoint folder or Hub id to start from, 'scratch', 'auto' (the base the "
                        "transfer benchmark says wins for this kind of image; prints which and why), or "
                        "'timm:NAME' (an ImageNet-pretrained timm encoder, e.g. timm:resnet18, downloaded from the "
                        "Hugging Face Hub, with a fresh decoder)")
    p.add_argument("--strategy", required=True, choices=STRATEGIES, help="transfer-learning strategy")
    p.add_argument("--out", required=True, help="output checkpoint folder")
    adv = add_training_arguments(p)
    adv.add_argument("--loss", choices=("bce+dice", "focal"), help="segmentation loss (default bce+dice)")
    adv.add_argument("--class-kind", choices=("objects", "network"),
                     help="what the class is: separate objects (particles, loops) or a network (grain boundaries, "
                          "lines); sets the metrics. Default: read off the masks")
    adv.add_argument("--val-fraction", type=arg_number(0, 0.95),
                     help="share of images (or, with --validation regions, of each image) that validates (default 0.25)")
    adv.add_argument("--validation", choices=VALIDATIONS,
                     help="model selection: a band of every image (regions, default: every label trains), whole "
                          "images (image) or none (fixed schedule)")
    adv.add_argument("--noise", type=arg_number(0, 1), dest="noise_probability",
                     help="fraction of tiles given Poisson noise at a random dose (default 0)")


def auto_base(images: str, masks: str, pixel_size_nm: float | None):
    """``--base auto``: temzoo.zoo.registry.recommend_base for these images (their pixel size: the option, else the
    first image's calibration or the Label page's labelset.json; the number of labelled images: the mask files)."""
    from pathlib import Path

    from temzoo.errors import TemzooError
    from temzoo.labelled import find_pairs, sidecar_pixel_sizes, unlabelled_images
    from temzoo.zoo.registry import recommend_base

    files = unlabelled_images(Path(images))
    px = pixel_size_nm
    if px is None and files:
        try:
            from temzoo.io import read_micrograph

            mg = read_micrograph(files[0])
            px = mg.pixel_size_nm if mg.calibrated else None
        except TemzooError:
            px = None  # the training itself reports unreadable images
        px = px or sidecar_pixel_sizes(images).get(files[0].stem)
    try:
        n = len(find_pairs(images, masks).pairs)
    except TemzooError:
        n = None  # the training itself reports a set without pairs
    return recommend_base(px, n or len(files) or None)


def config_from_args(args: argparse.Namespace):
    import sys

    from temzoo.train.config import TrainConfig

    if args.base == "auto":
        rec = auto_base(args.images, args.masks, args.pixel_size_nm)
        sys.stderr.write(f"base auto: {rec.base}, because {rec.reason}\n")
        args.base = rec.base
        if rec.base == "scratch" and args.strategy != "scratch":
            args.strategy = "scratch"  # a strategy for pretrained weights means nothing without them
    kw = {"images": args.images, "masks": args.masks, "base": args.base, "strategy": args.strategy,
          **training_kwargs(args, ("loss", "val_fraction", "validation", "noise_probability", "class_kind"))}
    return TrainConfig(**kw).validate()


def run(args: argparse.Namespace) -> int:
    return run_training(args, config_from_args(args), "fine-tuning")


def training_inputs(args: argparse.Namespace, config) -> list:
    """What a training command reads (never written into): images, masks/annotations and a base folder."""
    from pathlib import Path

    base = getattr(config, "base", None)
    extra = [base] if base and Path(base).is_dir() else []
    return [config.images, getattr(config, "masks", None), getattr(config, "annotations", None), *extra]


def run_training(args: argparse.Namespace, config, what: str) -> int:
    """Shared by finetune and pretrain-denoise: train in a work folder, publish --out (temzoo.io.outputs' rules),
    print a summary line."""
    import json
    import sys

    from temzoo.errors import TemzooError
    from temzoo.io.outputs import check_output, check_workdir, publish, read_marker, resolved, work_folder
    from temzoo.train.loop import train

    if args.resume and not args.workdir:
        raise TemzooError("--resume needs --workdir (the folder of the interrupted run)")
    inputs = training_inputs(args, config)
    wd = str(resolved(args.workdir)) if args.workdir else None
    # --resume may replace the output this same work folder published before (its marker names the work folder).
    same_run = bool(args.resume and wd and (read_marker(resolved(args.out)) or {}).get("workdir") == wd)
    plan = check_output(args.out, "model", overwrite=args.overwrite or same_run, inputs=inputs)
    workdir = args.workdir and check_workdir(args.workdir, resume=args.resume, overwrite=args.overwrite,
                                             inputs=[*inputs, plan.final])
    bar = None
    if not args.quiet:
        from temzoo.commands._progress import TrainingBar

        bar = TrainingBar(what)
    on_step, log = (bar.callbacks if bar else (None, lambda s: None))
    ok = False
    try:
        if workdir:
            result = train(config, workdir, out=workdir / "result", resume=args.resume, on_step=on_step, log=log)
            result = publish(plan, result, extra={"workdir": wd})
        else:
            with work_folder(plan.final) as work:  # a killed run's folder is removed by the next run (recover)
                result = publish(plan, train(config, work, out=work / "result", on_step=on_step, log=log))
        ok = True
    finally:
        if bar:
            bar.close(finished=ok)
    meta = json.loads((result / "temzoo.json").read_text())
    prov = meta.get("provenance", {})
    summary = {"out": str(result), "strategy": prov.get("strategy"), "base": prov.get("base_model"),
               "metrics": prov.get("metrics"), "best_epoch": prov.get("best_epoch"),
               "epochs": prov.get("epochs_run"), "seconds": prov.get("seconds"), "stopped": prov.get("stopped"),
               "pixel_size_nm": meta.get("pixel_size_nm"), "split": prov.get("split")}
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0
