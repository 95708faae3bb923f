"""Training: labelled sets, augmentation, transfer-learning strategies, the loop, denoising pretraining, jobs.

``from temzoo.train import TrainConfig, train`` is the entry point; submodules load lazily (torch is imported only
when training code is actually used, so the app and the CLI start fast).
"""

from __future__ import annotations

from typing import Any

from temzoo.train.config import RECOMMENDED_STRATEGY, STRATEGIES, TrainConfig

__all__ = ["RECOMMENDED_STRATEGY", "STRATEGIES", "TrainConfig", "pretrain_denoise", "train", "trainable_parameters"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from temzoo.train.loop import train

        return train
    if name == "trainable_parameters":
        from temzoo.train.strategies import trainable_parameters

        return trainable_parameters
    if name == "pretrain_denoise":
        from temzoo.train.denoise import pretrain_denoise

        return pretrain_denoise
    raise AttributeError(f"module 'temzoo.train' has no attribute {name!r}")
