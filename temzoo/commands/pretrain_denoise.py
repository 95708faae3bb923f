"""`python -m temzoo pretrain-denoise`: self-supervised pretraining on unlabelled micrographs: restore Poisson-noised
copies (default) or fill in hidden blocks (``--corruption mask``, masked reconstruction).

The output folder (task "denoising") works as ``--base`` for ``finetune``, which reinitialises only the head.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from temzoo.commands.finetune import add_training_arguments

    p.add_argument("--images", required=True, help="folder of unlabelled micrographs")
    p.add_argument("--base", default="scratch", help="zoo id, checkpoint folder or Hub id, or 'scratch' (default)")
    p.add_argument("--out", required=True, help="output checkpoint folder (usable as --base)")
    adv = add_training_arguments(p)
    adv.add_argument("--corruption", choices=("poisson", "mask"),
                     help="what the net learns to undo: Poisson shot noise (default) or hidden 16 px blocks "
                          "(masked reconstruction)")


def run(args: argparse.Namespace) -> int:
    from temzoo.commands.finetune import run_training, training_kwargs
    from temzoo.train.denoise import denoise_config

    config = denoise_config(args.images, args.base, **training_kwargs(args, ("corruption",))).validate()
    return run_training(args, config, "denoising pretraining")
