"""Give a pretrained base the learning speed of a fresh network back, without changing what it computes.

A convolution whose output goes straight into BatchNorm is scale-invariant: multiplying an output channel's kernel
(and bias) by ``c``, that channel's BatchNorm running mean by ``c`` and its running variance by ``c**2`` leaves the
network's output unchanged. The optimizer does not see it that way: Adam moves every weight by about ``lr`` per
step, so the *relative* step of a kernel is ``lr / |w|``. Pretraining grows these kernels (the generalist's are 2-4x
their initial norm, docs/PRETRAINING_STUDY.md section 8), so a fine-tune from a base learns several times slower than
the same network from scratch: the effective-learning-rate view of scale-invariant networks (van Laarhoven 2017,
"L2 regularization versus batch and weight normalization"; Li & Arora 2020) and the loss of plasticity of
warm-started training (Ash & Adams 2020, whose shrink-and-perturb this is the function-preserving half of).

:func:`rescale_to_init` puts every such pretrained kernel back at the per-channel norm of the run's own seeded
initialisation (what scratch starts from), keeps what the base computes, and reports what it did.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.modules.batchnorm._BatchNorm,)


@dataclass(frozen=True)
class Rescaled:
    """What :func:`rescale_to_init` changed: kernels rescaled and their median norm ratio (base / init) before."""

    kernels: int
    median_ratio: float

    def note(self) -> str:
        return (f"{self.kernels} pretrained kernels feeding BatchNorm rescaled to their initial norm (they were "
                f"{self.median_ratio:.2g}x it; what the base computes is unchanged, it learns at scratch's speed)")


def bn_fed_convs(model: nn.Module, in_channels: int, size: int = 64) -> list[tuple[str, str]]:
    """(convolution, BatchNorm) module names where the convolution's output is the BatchNorm's input, found by
    following one forward pass (so it holds for any encoder, not only ones whose modules are listed in order)."""
    names = {id(m): n for n, m in model.named_modules()}
    produced: dict[int, tuple[str, torch.Tensor]] = {}
    pairs: list[tuple[str, str]] = []

    def after_conv(mod, _inp, out):
        produced[id(out)] = (names[id(mod)], out)  # the tensor is kept so its id is not reused during the pass

    def before_norm(mod, inp):
        hit = produced.get(id(inp[0]))
        if hit is not None and mod.num_features == hit[1].shape[1]:
            pairs.append((hit[0], names[id(mod)]))

    hooks = [m.register_forward_hook(after_conv) for m in model.modules() if isinstance(m, _CONV)]
    hooks += [m.register_forward_pre_hook(before_norm) for m in model.modules() if isinstance(m, _NORM)]
    try:
        _eval_forward(model, torch.zeros(1, in_channels, size, size))
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(pairs))


@torch.no_grad()
def _eval_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network's output in evaluation mode (on its own device), leaving its mode as it was."""
    was_training = model.training
    try:
        model.eval()
        return model(x.to(next(model.parameters()).device)).float()
    finally:
        model.train(was_training)


def _channel_norms(w: torch.Tensor) -> torch.Tensor:
    return w.detach().flatten(1).float().norm(dim=1)


@torch.no_grad()
def rescale_to_init(model: nn.Module, init_state: dict[str, torch.Tensor], pretrained: set[str],
                    in_channels: int) -> Rescaled:
    """Rescale each pretrained kernel that feeds a BatchNorm, channel by channel, to the root-mean-square channel
    norm of the same kernel in ``init_state`` (the run's fresh initialisation); the BatchNorm's running statistics
    follow, so the network's output is unchanged."""
    modules = dict(model.named_modules())
    ratios: list[torch.Tensor] = []
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    before = _probe(model, in_channels)
    for conv_name, norm_name in bn_fed_convs(model, in_channels):
        key = f"{conv_name}.weight"
        if key not in pretrained or key not in init_state:
            continue
        conv, norm = modules[conv_name], modules[norm_name]
        now = _channel_norms(conv.weight)
        target = _channel_norms(init_state[key]).pow(2).mean().sqrt()
        c = torch.where(now > 0, target / now.clamp_min(1e-12), torch.ones_like(now))
        shape = (-1,) + (1,) * (conv.weight.dim() - 1)
        conv.weight.mul_(c.view(shape).to(conv.weight.dtype))
        if conv.bias is not None:
            conv.bias.mul_(c.to(conv.bias.dtype))
        if norm.running_mean is not None:
            norm.running_mean.mul_(c.to(norm.running_mean.dtype))
            norm.running_var.mul_(c.pow(2).to(norm.running_var.dtype))
        ratios.append(now / target)
    after = _probe(model, in_channels)
    # A convolution whose output is changed in place before the BatchNorm (say, a residual added into it) passes
    # the pairing but is not scale-invariant: then nothing is rescaled, rather than a base that computes otherwise.
    if not torch.allclose(after, before, rtol=1e-2, atol=1e-2 * float(before.abs().max())):
        model.load_state_dict(saved)
        return Rescaled(kernels=0, median_ratio=1.0)
    median = float(torch.cat(ratios).median()) if ratios else 1.0
    return Rescaled(kernels=len(ratios), median_ratio=median)


def _probe(model: nn.Module, in_channels: int, size: int = 64) -> torch.Tensor:
    """The network's output on a fixed random input."""
    return _eval_forward(model, torch.randn(2, in_channels, size, size, generator=torch.Generator().manual_seed(0)))


__all__ = ["Rescaled", "bn_fed_convs", "rescale_to_init"]
