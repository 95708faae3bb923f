"""Rescaling a base's BatchNorm-fed kernels to their initial norm (temzoo.train.rescale): the base computes the same,
and fine-tuning moves it as fast as a fresh network."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from temzoo.train import TrainConfig, train
from temzoo.train.rescale import bn_fed_convs, rescale_to_init
from temzoo.zoo.checkpoint import ModelSpec, TemzooMeta, save_checkpoint
from tests.trainsets import write_disc_set


def _grown(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """What pretraining does to a scale-invariant network: the kernels feeding BatchNorm grow, the function stays."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for conv, norm in bn_fed_convs(model, 1):
            modules[conv].weight.mul_(factor)
            modules[norm].running_mean.mul_(factor)
            modules[norm].running_var.mul_(factor**2)
    return model


def _fresh(seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ModelSpec().build()


def test_pairs_are_the_convolutions_feeding_batchnorm():
    model = _fresh()
    pairs = bn_fed_convs(model, 1)
    assert ("encoder.model.conv1", "encoder.model.bn1") in pairs
    assert any(c.startswith("decoder.") for c, _ in pairs)
    assert not any(c.startswith("segmentation_head") for c, _ in pairs)  # the head feeds no BatchNorm
    assert model.training  # the probe pass leaves the mode as it found it


def test_rescale_keeps_the_function_and_restores_the_initial_norm():
    model = _grown(_fresh(1), 3.0).eval()
    init = {k: v.clone() for k, v in _fresh(2).state_dict().items() if v.dim() > 1}
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        before = model(x)
    head_before = model.segmentation_head[0].weight.clone()
    names = {n for n, _ in model.named_parameters()}
    done = rescale_to_init(model, init, names, 1)
    with torch.no_grad():
        after = model(x)
    assert torch.allclose(before, after, rtol=1e-3, atol=1e-3 * float(before.abs().max()))
    assert done.kernels == len(bn_fed_convs(model, 1)) and done.median_ratio == pytest.approx(3.0, rel=0.2)
    for conv, _ in bn_fed_convs(model, 1):
        w = dict(model.named_parameters())[f"{conv}.weight"].flatten(1).norm(dim=1)
        target = init[f"{conv}.weight"].flatten(1).norm(dim=1).pow(2).mean().sqrt()
        assert torch.allclose(w, target.expand_as(w), rtol=1e-4)
    assert torch.equal(model.segmentation_head[0].weight, head_before)
    # only what came from the base is touched
    again = _grown(_fresh(1), 3.0)
    kept = rescale_to_init(again, init, {"encoder.model.conv1.weight"}, 1)
    assert kept.kernels == 1
    assert torch.equal(again.encoder.model.layer1[0].conv1.weight, _grown(_fresh(1), 3.0).encoder.model.layer1[0].conv1.weight)


def _angle(w0: torch.Tensor, w1: torch.Tensor) -> float:
    """Mean per-channel angle between two kernels: what a kernel feeding BatchNorm computes depends on its
    direction only, so this is how far fine-tuning moved it, whatever its norm."""
    cos = torch.nn.functional.cosine_similarity(w0.flatten(1).float(), w1.flatten(1).float(), dim=1)
    return float(torch.arccos(cos.clamp(-1, 1)).mean())


def test_a_rescaled_base_starts_where_the_base_is_and_moves_like_scratch(tmp_path):
    images, masks = write_disc_set(tmp_path / "discs", n=4, size=64)
    base = save_checkpoint(_grown(_fresh(0), 4.0).eval(), tmp_path / "grown",
                           TemzooMeta(pixel_size_nm=0.05, tile_size=64, description="a grown base, for tests"))
    moved, start = {}, {}
    for rescale in (False, True):
        work = tmp_path / f"w{rescale}"
        cfg = TrainConfig(images=str(images), masks=str(masks), base=str(base), strategy="full", epochs=1,
                          steps_per_epoch=3, batch_size=8, tile_size=32, seed=0, base_rescale=rescale)
        result = train(cfg, work)
        notes = " ".join(json.loads((result / "temzoo.json").read_text())["provenance"]["notes"])
        start[rescale] = float(re.search(r"base before fine-tuning: val F1 ([0-9.]+)", notes).group(1))
        assert ("rescaled to their initial norm" in notes) is rescale
        key = "encoder.model.layer1.0.conv1.weight"
        moved[rescale] = _angle(load_file(str(base / "model.safetensors"))[key],
                                load_file(str(work / "last" / "model.safetensors"))[key])
    assert start[True] == pytest.approx(start[False], abs=1e-3)  # the same function before fine-tuning
    assert moved[True] > 2 * moved[False]


def test_the_cli_switch_reaches_the_config():
    import argparse

    from temzoo.commands.finetune import add_arguments, training_kwargs

    p = argparse.ArgumentParser()
    add_arguments(p)
    common = ["--images", "i", "--masks", "m", "--base", "b", "--strategy", "full", "--out", "o"]
    assert training_kwargs(p.parse_args([*common, "--base-rescale"]))["base_rescale"] is True
    assert "base_rescale" not in training_kwargs(p.parse_args(common))  # the default stays in TrainConfig


class _AddedIntoBeforeNorm(torch.nn.Module):
    """A convolution whose output gets a shortcut added in place before BatchNorm: paired, yet not scale-invariant."""

    def __init__(self):
        super().__init__()
        self.conv, self.skip, self.bn = torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Conv2d(1, 4, 1), \
            torch.nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        y += self.skip(x)
        return self.bn(y)


def test_a_pairing_that_is_not_scale_invariant_changes_nothing():
    torch.manual_seed(0)
    model = _AddedIntoBeforeNorm()
    with torch.no_grad():
        model.conv.weight.mul_(5)
    assert bn_fed_convs(model, 1) == [("conv", "bn")]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    init = {k: v.clone() for k, v in _AddedIntoBeforeNorm().state_dict().items() if v.dim() > 1}
    done = rescale_to_init(model, init, {"conv.weight"}, 1)
    assert done.kernels == 0
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
