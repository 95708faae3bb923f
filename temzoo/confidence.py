"""How sure the model is, per pixel: probabilities, entropy, TTA / MC-dropout / ensemble spread, calibration.

Per-tile pieces work on torch tensors (used inside :mod:`temzoo.predict`); the rest on NumPy maps.
Binary models (one output channel) use a sigmoid; multi-class models a softmax.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

EPS = 1e-6
# The 8 dihedral transforms: (number of 90-degree rotations, horizontal flip first).
DIHEDRAL: tuple[tuple[int, bool], ...] = tuple((k, f) for f in (False, True) for k in range(4))


# --------------------------------------------------------------------------------------------------- per tile (torch)
def probabilities(logits, temperature: float = 1.0):
    """Logits ``(B, C, H, W)`` -> probabilities; C == 1 means binary (sigmoid), else softmax over C."""
    import torch

    z = logits.float() / float(temperature)
    return torch.sigmoid(z) if z.shape[1] == 1 else torch.softmax(z, dim=1)


def entropy_t(p):
    """Predictive entropy (nats) of probabilities ``(B, C, H, W)`` -> ``(B, H, W)``."""
    return _entropy(p[:, 0]) if p.shape[1] == 1 else _entropy(p, dim=1)


def _entropy(p, dim: int | None = None):
    """Entropy of a foreground-probability tensor (``dim`` None) or of class probabilities along ``dim``; the one
    formula behind :func:`entropy_t` and :func:`entropy`."""
    import torch

    if dim is None:
        q, r = p.clamp(EPS, 1.0), (1 - p).clamp(EPS, 1.0)
        return -(q * torch.log(q) + r * torch.log(r))
    q = p.clamp(EPS, 1.0)
    return -(q * torch.log(q)).sum(dim=dim)


def dihedral(x, k: int, flip: bool):
    """Apply one of the 8 dihedral transforms to the last two axes."""
    import torch

    if flip:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k, dims=(-2, -1)) if k else x


def dihedral_inverse(x, k: int, flip: bool):
    import torch

    x = torch.rot90(x, -k, dims=(-2, -1)) if k else x
    return torch.flip(x, dims=(-1,)) if flip else x


@contextlib.contextmanager
def mc_dropout(model, p: float = 0.2) -> Iterator[None]:
    """Dropout on the features entering the segmentation head, for Monte-Carlo sampling.

    A forward pre-hook, not ``model.train()``: weights, BatchNorm statistics and the module's mode are untouched (the
    model may be a cached object shared between app sessions), and the hook is removed on exit even after an error.
    """
    import torch.nn.functional as F

    head = getattr(model, "segmentation_head", None)
    if head is None:
        from temzoo.errors import ModelError

        raise ModelError("MC-dropout needs an smp model with a segmentation_head; run without --mc-dropout")

    def hook(_module, inputs):
        return (F.dropout(inputs[0], p=p, training=True), *inputs[1:])

    handle = head.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@dataclass
class TileStats:
    """Per-tile summary of K stochastic/augmented samples: mean probability, spread, mean per-sample entropy."""

    mean: object  # (B, C, H, W)
    spread: object  # (B, H, W): std of the probabilities over samples (summed over classes for multi-class)
    mean_entropy: object  # (B, H, W)


def summarize_samples(samples: Sequence) -> TileStats:
    """Combine K probability tensors ``(B, C, H, W)`` (from TTA / MC / ensemble members)."""
    import torch

    stack = torch.stack(list(samples))  # (K, B, C, H, W)
    mean = stack.mean(0)
    if len(samples) > 1:
        var = stack.var(0, unbiased=False)
        spread = var[:, 0].sqrt() if var.shape[1] == 1 else var.sum(1).sqrt()
    else:
        spread = torch.zeros_like(mean[:, 0])
    ment = torch.stack([entropy_t(s) for s in samples]).mean(0)
    return TileStats(mean, spread, ment)


# ----------------------------------------------------------------------------------------------------- maps (NumPy)
def _as_tensor(probability):
    """``(tensor, was_numpy)``: NumPy maps become zero-copy float32 CPU tensors, so one torch implementation serves
    the CPU maps and the device pipeline of :mod:`temzoo.predict`."""
    import torch

    if isinstance(probability, torch.Tensor):
        return probability, False
    return torch.from_numpy(np.ascontiguousarray(probability, dtype=np.float32)), True


def max_probability(probability):
    """Confidence = probability of the predicted class (0.5..1 for binary); a NumPy map or a tensor on any device."""
    import torch

    p, was_np = _as_tensor(probability)
    out = torch.maximum(p, 1 - p) if p.ndim == 2 else p.amax(dim=0)
    return out.numpy() if was_np else out


def entropy(probability):
    """Predictive entropy in nats (0 .. ln C) of a ``(H, W)`` foreground or ``(C, H, W)`` class map (or tensor)."""
    p, was_np = _as_tensor(probability)
    out = _entropy(p) if p.ndim == 2 else _entropy(p, dim=0)
    return out.numpy() if was_np else out


def hard_mask(probability, threshold: float = 0.5):
    """Class-index mask (uint8): thresholded foreground for binary, argmax for multi-class (NumPy or tensor)."""
    import torch

    was_np = not isinstance(probability, torch.Tensor)
    p = torch.from_numpy(np.ascontiguousarray(probability)) if was_np else probability
    out = (p >= threshold) if p.ndim == 2 else p.argmax(dim=0)
    out = out.to(torch.uint8)
    return out.numpy() if was_np else out


def combine_members(probabilities: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Ensemble of probability maps on one grid: mean, spread (std) and mutual information (disagreement)."""
    if not probabilities:
        raise ValueError("an ensemble needs at least one member")
    stack = np.stack([np.asarray(p, dtype=np.float32) for p in probabilities])
    mean = stack.mean(0)
    var = stack.var(0)
    spread = np.sqrt(var if var.ndim == 2 else var.sum(0))
    mi = entropy(mean) - np.mean([entropy(p) for p in probabilities], axis=0)
    return {"probability": mean, "spread": spread.astype(np.float32), "mutual_information": np.maximum(mi, 0)}


# ------------------------------------------------------------------------------------------------------ calibration
def _binary_logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(q) - np.log1p(-q)


def apply_temperature(probability: np.ndarray, temperature: float) -> np.ndarray:
    """Re-scale binary or class probabilities as if the logits had been divided by ``temperature``."""
    p = np.asarray(probability)
    if temperature == 1.0:
        return p.astype(np.float32, copy=True)
    if p.ndim == 2:
        return (1.0 / (1.0 + np.exp(-_binary_logit(p) / temperature))).astype(np.float32)
    z = np.log(np.clip(p, EPS, 1.0)) / temperature  # log-probabilities differ from logits by a constant per pixel
    z -= z.max(axis=0, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


def fit_temperature(probabilities: Sequence[np.ndarray] | np.ndarray, masks: Sequence[np.ndarray] | np.ndarray,
                    max_pixels: int = 1_000_000, seed: int = 0) -> float:
    """Temperature (> 0) minimising the negative log-likelihood on labelled pixels (Guo et al. 2017).

    Accepts one map/mask pair or lists of them; pixels are subsampled to ``max_pixels`` (fit quality is unchanged).
    """
    from scipy.optimize import minimize_scalar

    from temzoo.errors import DataError

    probs = [probabilities] if isinstance(probabilities, np.ndarray) else list(probabilities)
    mks = [masks] if isinstance(masks, np.ndarray) else list(masks)
    if len(probs) != len(mks) or not probs:
        raise DataError("temperature fitting needs one mask per probability map")
    zs, ys = [], []
    for p, m in zip(probs, mks):
        p = np.asarray(p)
        m = np.asarray(m)
        if p.shape[-2:] != m.shape[-2:]:
            raise DataError(f"mask shape {m.shape} differs from the prediction's {p.shape[-2:]}; "
                            "use the same image size")
        if p.ndim != 2:
            raise DataError("temperature fitting is implemented for binary models; multi-class calibration is not")
        zs.append(_binary_logit(p).ravel())
        ys.append((m > 0).ravel().astype(np.float64))
    z = np.concatenate(zs)
    y = np.concatenate(ys)
    if z.size > max_pixels:
        idx = np.random.default_rng(seed).choice(z.size, max_pixels, replace=False)
        z, y = z[idx], y[idx]

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        # log(1 + exp(-s)) for y=1 and log(1 + exp(s)) for y=0, computed stably
        return float(np.mean(np.logaddexp(0.0, np.where(y > 0, -s, s))))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


@dataclass
class Reliability:
    """Reliability diagram data: per confidence bin its mean confidence, accuracy and pixel count; plus ECE."""

    bin_edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    ece: float

    def to_dict(self) -> dict:
        return {"bin_edges": self.bin_edges.tolist(), "confidence": self.confidence.tolist(),
                "accuracy": self.accuracy.tolist(), "count": self.count.tolist(), "ece": self.ece}


def reliability(probability: np.ndarray, mask: np.ndarray, n_bins: int = 15,
                threshold: float = 0.5) -> Reliability:
    """Expected calibration error over equal-width confidence bins (max-probability confidence)."""
    p = np.asarray(probability)
    m = np.asarray(mask)
    if p.shape[-2:] != m.shape[-2:]:
        from temzoo.errors import DataError

        raise DataError(f"mask shape {m.shape} differs from the prediction's {p.shape[-2:]}; use the same image size")
    conf = max_probability(p).ravel()
    pred = hard_mask(p, threshold).ravel()
    truth = (m > 0).astype(np.uint8).ravel() if p.ndim == 2 else m.astype(np.int64).ravel()
    correct = (pred == truth).astype(np.float64)
    return reliability_from_pixels(conf, correct, n_bins, lo=0.5 if p.ndim == 2 else 0.0)


def reliability_from_pixels(conf: np.ndarray, correct: np.ndarray, n_bins: int = 15, lo: float = 0.0) -> Reliability:
    """ECE and bin table from flat confidence / correctness arrays (pool several images by concatenating)."""
    edges = np.linspace(lo, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    csum = np.bincount(idx, weights=conf, minlength=n_bins)
    asum = np.bincount(idx, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mc = np.where(count > 0, csum / count, np.nan)
        acc = np.where(count > 0, asum / count, np.nan)
    n = max(int(count.sum()), 1)
    ece = float(np.nansum(count / n * np.abs(acc - mc)))
    return Reliability(edges, mc, acc, count, ece)
