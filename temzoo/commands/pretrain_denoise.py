"""`python -m temzoo pretrain-denoise`: Poisson-noise denoising pretraining on unlabelled micrographs.

The output folder (task "denoising") works as ``--base`` for ``finetune``, which reinitialises only the head.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, help="folder of unlabelled micrographs")
    p.add_argument("--base", default="scratch", help="zoo id, checkpoint folder or Hub id, or 'scratch' (default)")
    p.add_argument("--out", required=True, help="output checkpoint folder (usable as --base)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="wall-clock budget in minutes")
    budget.add_argument("--epochs", type=int, help="number of epochs (default 30 when no budget is given)")
    p.add_argument("--pixel-size-nm", type=float, help="pixel size of the images (overrides their calibration)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    adv = p.add_argument_group("advanced")
    adv.add_argument("--tile-size", type=int, help="training tile edge in pixels (default 128)")
    adv.add_argument("--batch-size", type=int, help="tiles per step (default 8)")
    adv.add_argument("--lr", type=float, help="peak learning rate (default 3e-3)")
    adv.add_argument("--downsample", type=float, help="shrink images by this factor (default 1)")
    adv.add_argument("--clock", choices=("wall", "cpu"),
                     help="what --minutes measures: wall time (default) or this process's CPU time")
    adv.add_argument("--workdir", help="keep the working folder (resume state, best/, log) here")
    adv.add_argument("--resume", action="store_true", help="continue an interrupted run from --workdir")
    adv.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from temzoo.commands.finetune import run_training
    from temzoo.train.denoise import denoise_config

    kw = {"minutes": args.minutes, "epochs": args.epochs, "pixel_size_nm": args.pixel_size_nm, "seed": args.seed,
          "device": args.device}
    for name in ("tile_size", "batch_size", "lr", "downsample", "clock"):
        v = getattr(args, name, None)
        if v is not None:
            kw[name] = v
    config = denoise_config(args.images, args.base, **kw).validate()
    return run_training(args, config, "denoising pretraining")
