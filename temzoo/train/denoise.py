"""Denoising pretraining (Kazimi & Sandfeld): learn to restore Poisson-noised copies of unlabelled micrographs.

The network is the same U-Net later fine-tuned for segmentation; its output folder (task ``denoising`` in
``temzoo.json``) is a valid ``--base`` for ``finetune``, which then reinitialises only the segmentation head. The
card's ``provenance.lineage`` records the chain (base -> denoising -> fine-tuned).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from temzoo.train.config import TrainConfig


def denoise_config(images: str | Path, base: str = "scratch", **overrides) -> TrainConfig:
    """A :class:`TrainConfig` for denoising pretraining (strategy ``full`` from a base, ``scratch`` otherwise)."""
    cfg = {
        "images": str(images),
        "base": base,
        "task": "denoising",
        "strategy": "scratch" if base in ("", "scratch", None) else "full",
        "loss": "mse",
        "val_fraction": 0.25,
        "validation": "image",  # whole held-out micrographs: a band's PSNR would depend on which edge it is
        "patience": 20,
    }
    cfg.update(overrides)
    return TrainConfig(**cfg)


def pretrain_denoise(
    images: str | Path,
    out: str | Path,
    base: str = "scratch",
    *,
    minutes: float | None = None,
    epochs: int | None = None,
    workdir: str | Path | None = None,
    on_step: Callable[[dict], None] | None = None,
    log: Callable[[str], None] | None = None,
    **overrides,
) -> Path:
    """Train ``base`` (or a fresh network) to denoise ``images``; write the result to ``out`` and return it."""
    from temzoo.train.loop import train

    cfg = denoise_config(images, base, minutes=minutes, epochs=epochs, **overrides)
    if workdir is not None:
        return train(cfg, workdir, out=out, on_step=on_step, log=log)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{Path(out).name}.work-", dir=Path(out).parent) as tmp:
        return train(cfg, tmp, out=out, on_step=on_step, log=log)
