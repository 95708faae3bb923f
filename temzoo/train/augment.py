"""Batch augmentation on tensors (CPU or GPU): the 8 dihedral transforms, intensity jitter, Poisson noise at a dose,
and the hidden blocks of masked-reconstruction pretraining.

Scale jitter happens when tiles are cut (:class:`temzoo.train.data.TileSampler`), because it changes the crop size;
on a GPU the dihedral transforms are cut there too (:class:`temzoo.train.data.DeviceTileSampler`).
All functions return new tensors and take an explicit ``torch.Generator`` so runs are reproducible.
"""

from __future__ import annotations

import math

import torch


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Transform ``k`` in 0..7 of the square's symmetry group on the last two axes (k >= 4 adds a flip)."""
    y = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if k >= 4 else y


def random_dihedral(x: torch.Tensor, y: torch.Tensor | None, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply an independent random dihedral transform to each sample of ``x`` (N, C, H, W) and its target ``y``."""
    ks = torch.randint(0, 8, (x.shape[0],), generator=g, device=g.device).tolist()
    xs = torch.stack([dihedral(x[i], k) for i, k in enumerate(ks)])
    ys = None if y is None else torch.stack([dihedral(y[i], k) for i, k in enumerate(ks)])
    return xs, ys


def intensity_jitter(x: torch.Tensor, g: torch.Generator, contrast: float = 0.2, brightness: float = 0.2) -> torch.Tensor:
    """Per-sample contrast (x0.8..1.25) and brightness (+-0.2 sd) changes of a standardised image."""
    n = x.shape[0]
    shape = (n,) + (1,) * (x.ndim - 1)
    log_c = (torch.rand(shape, generator=g, device=g.device) * 2 - 1) * math.log1p(contrast)
    b = (torch.rand(shape, generator=g, device=g.device) * 2 - 1) * brightness
    return x * torch.exp(log_c).to(x.dtype) + b.to(x.dtype)


def random_doses(n: int, dose_range: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    """Doses (mean counts per pixel) drawn log-uniformly from ``dose_range``."""
    lo, hi = math.log(dose_range[0]), math.log(dose_range[1])
    return torch.exp(lo + torch.rand(n, generator=g, device=g.device) * (hi - lo))


def poisson_noise(x: torch.Tensor, dose: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Shot noise as if each sample were recorded with ``dose`` mean counts per pixel.

    The image is mapped to non-negative intensities (min..max -> 0..2*dose around the mean), sampled, and mapped back
    to the sample's own mean and standard deviation, so the noisy tile stays standardised like its clean version.
    """
    dims = tuple(range(1, x.ndim))
    xf = x.float()
    lo = xf.amin(dim=dims, keepdim=True)
    hi = xf.amax(dim=dims, keepdim=True)
    rel = (xf - lo) / (hi - lo).clamp_min(1e-6)  # 0..1
    d = dose.float().view(-1, *([1] * (x.ndim - 1)))
    lam = rel * (2 * d)  # mean pixel ~ dose counts
    counts = torch.poisson(lam, generator=g)
    noisy = counts / (2 * d)
    mean, std = xf.mean(dim=dims, keepdim=True), xf.std(dim=dims, keepdim=True)
    nm, ns = noisy.mean(dim=dims, keepdim=True), noisy.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return ((noisy - nm) / ns * std + mean).to(x.dtype)


def block_mask(n: int, height: int, width: int, ratio: float, patch: int, g: torch.Generator) -> torch.Tensor:
    """(n, 1, height, width) float mask, 1 where a square ``patch`` is hidden: each cell of a ``patch`` grid is hidden
    with probability ``ratio`` (SimMIM/SparK-style masking for masked-reconstruction pretraining). The grid starts at a
    random offset per sample, so block edges do not always fall on the same pixels of a tile."""
    gh, gw = -(-height // patch) + 1, -(-width // patch) + 1  # one spare cell: room for the offset
    cells = (torch.rand((n, 1, gh, gw), generator=g, device=g.device) < ratio).float()
    full = cells.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)
    offs = torch.randint(0, patch, (n, 2), generator=g, device=g.device).tolist()
    return torch.stack([full[i, :, oy:oy + height, ox:ox + width] for i, (oy, ox) in enumerate(offs)])


def masked_loss(loss_fn, pred: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """``loss_fn`` (a mean-reducing MSE or L1) over the ``hidden`` pixels only: what the net had to infer from context.
    Scaled so that it is the mean over hidden pixels (a batch with nothing hidden gives 0)."""
    share = hidden.mean()
    return loss_fn(pred * hidden, target * hidden) / share.clamp_min(1e-6)


def augment_batch(
    x: torch.Tensor,
    y: torch.Tensor | None,
    g: torch.Generator,
    *,
    noise_probability: float = 0.5,
    dose_range: tuple[float, float] = (2.0, 200.0),
    jitter: float = 0.2,
    dihedral: bool = True,
    fixed_shapes: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The segmentation augmentation: dihedral (image and mask; ``dihedral=False`` when the tiles were cut already
    transformed), intensity jitter, Poisson noise on some tiles. ``fixed_shapes`` (default: on any device but the
    CPU) noises every tile and keeps the picked ones, instead of noising only those (cheaper, but its shapes depend
    on the draw, which makes the host wait for the device)."""
    if dihedral:
        x, y = random_dihedral(x, y, g)
    if jitter:
        x = intensity_jitter(x, g, contrast=jitter, brightness=jitter)
    if noise_probability > 0:
        pick = torch.rand(x.shape[0], generator=g, device=g.device) < noise_probability
        if fixed_shapes is None:
            fixed_shapes = x.device.type != "cpu"
        if fixed_shapes:
            # On a GPU: noise every tile and keep it where picked; no data-dependent shape, so no wait on the device.
            noisy = poisson_noise(x, random_doses(x.shape[0], dose_range, g), g)
            return torch.where(pick.view(-1, *([1] * (x.ndim - 1))), noisy, x), y
        if bool(pick.any()):
            noisy = poisson_noise(x[pick], random_doses(int(pick.sum()), dose_range, g), g)
            x = x.clone()
            x[pick] = noisy
    return x, y
