"""Normalisation and resampling shared by inference and training (one implementation, so they cannot drift)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Normalization:
    """How a checkpoint expects its input scaled; stored in ``temzoo.json``.

    ``standardize``: clip to the given percentiles, then zero mean / unit variance per image (the standard for
    HRTEM, Rangel DaCosta et al.), so that dose and detector gain do not matter.
    """

    method: str = "standardize"
    clip_percentiles: tuple[float, float] = (0.5, 99.5)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["clip_percentiles"] = list(self.clip_percentiles)
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> Normalization:
        if not d:
            return cls()
        return cls(method=str(d.get("method", "standardize")),
                   clip_percentiles=tuple(d.get("clip_percentiles", (0.5, 99.5))))  # type: ignore[arg-type]


def normalize(image: np.ndarray, norm: Normalization | None = None) -> np.ndarray:
    """Return a new float32 array scaled as ``norm`` says; never modifies ``image``. NaN/inf become the median."""
    norm = norm or Normalization()
    x = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(x)
    if not finite.all():
        fill = float(np.median(x[finite])) if finite.any() else 0.0
        x = np.where(finite, x, fill).astype(np.float32)
    if norm.method == "none":
        return x.copy() if x is image else x
    if norm.method != "standardize":
        raise ValueError(f"unknown normalisation {norm.method!r}")
    lo, hi = norm.clip_percentiles
    if (lo, hi) != (0.0, 100.0):
        # Percentiles on a strided subsample: same answer to within noise, ~16x faster on 4k images.
        step = max(1, int(np.sqrt(x.size / 262144)))
        p_lo, p_hi = np.percentile(x[::step, ::step] if x.ndim == 2 else x, [lo, hi])
        x = np.clip(x, p_lo, p_hi)
    mean = float(x.mean())
    std = float(x.std())
    return ((x - mean) / (std if std > 1e-12 else 1.0)).astype(np.float32, copy=False)


def scale_factor(pixel_size_nm: float | None, target_nm: float | None) -> float:
    """Zoom factor that takes an image at ``pixel_size_nm`` to ``target_nm`` (1.0 when either is unknown)."""
    if not pixel_size_nm or not target_nm:
        return 1.0
    return float(pixel_size_nm) / float(target_nm)


def resample(image: np.ndarray, factor: float, order: str = "bilinear") -> np.ndarray:
    """Zoom a 2D (or ``(C, H, W)``) float array by ``factor``; antialiased when shrinking.

    Uses torch's interpolate (fast on large images); ``order='nearest'`` for label masks.
    """
    if abs(factor - 1.0) < 1e-6:
        return np.asarray(image)
    h, w = image.shape[-2:]
    size = (max(1, int(round(h * factor))), max(1, int(round(w * factor))))
    return resize(image, size, order=order)


def resize(image: np.ndarray, size: tuple[int, int], order: str = "bilinear") -> np.ndarray:
    """Resize a 2D or ``(C, H, W)`` array to ``size`` = (H, W)."""
    import torch
    import torch.nn.functional as F

    arr = np.asarray(image)
    if tuple(arr.shape[-2:]) == tuple(size):
        return arr
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    squeeze = t.ndim == 2
    t = t[None, None] if squeeze else t[None]
    if order == "nearest":
        out = F.interpolate(t, size=size, mode="nearest-exact")
    else:
        shrinking = size[0] < arr.shape[-2] or size[1] < arr.shape[-1]
        out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
    out = out[0, 0] if squeeze else out[0]
    result = out.numpy()
    return result.astype(arr.dtype, copy=False) if order == "nearest" else result
