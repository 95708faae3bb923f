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


def normalize(image, norm: Normalization | None = None):
    """Return a new float32 array (or tensor, on its own device) scaled as ``norm`` says; never modifies ``image``.
    NaN/inf become the median. One torch implementation serves NumPy arrays (zero-copy CPU tensors) and device
    tensors alike, so inference on a GPU normalises exactly as training did."""
    import torch

    if isinstance(image, torch.Tensor):
        return _normalize_t(image, norm or Normalization())
    arr = np.asarray(image)
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return _normalize_t(x, norm or Normalization()).numpy()  # never aliases the input (see _normalize_t)


def _normalize_t(image, norm: Normalization):
    import torch

    x = image.float()
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        vals = x[finite]
        fill = float(percentiles(vals, [50.0])[0]) if vals.numel() else 0.0
        x = torch.where(finite, x, torch.tensor(fill, dtype=x.dtype, device=x.device))
    if norm.method == "none":
        return x.clone() if x.data_ptr() == image.data_ptr() else x
    if norm.method != "standardize":
        raise ValueError(f"unknown normalisation {norm.method!r}")
    lo, hi = norm.clip_percentiles
    if (lo, hi) != (0.0, 100.0):
        # Percentiles on a strided subsample: same answer to within noise, ~16x faster on 4k images.
        step = max(1, int(np.sqrt(x.numel() / 262144)))
        p = percentiles(x[::step, ::step] if x.ndim == 2 else x, [lo, hi])
        x = x.clamp(p[0], p[1])  # tensors on x's device: no host round trip
    mean = x.mean()
    std = x.std(correction=0)
    return (x - mean) / torch.where(std > 1e-12, std, torch.ones_like(std))


def percentiles(x, qs):
    """``np.percentile(x, qs)`` (linear interpolation) of a tensor, on its device; returns a 1D tensor."""
    import torch

    s = x.reshape(-1).sort().values
    pos = torch.tensor(qs, dtype=torch.float64, device=s.device) / 100.0 * (s.numel() - 1)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    frac = (pos - lo).to(s.dtype)
    return s[lo] + (s[hi] - s[lo]) * frac


def scale_factor(pixel_size_nm: float | None, target_nm: float | None) -> float:
    """Zoom factor that takes an image at ``pixel_size_nm`` to ``target_nm`` (1.0 when either is unknown)."""
    if not pixel_size_nm or not target_nm:
        return 1.0
    return float(pixel_size_nm) / float(target_nm)


def resample(image, factor: float, order: str = "bilinear"):
    """Zoom a 2D (or ``(C, H, W)``) float array or tensor by ``factor``; antialiased when shrinking.

    Uses torch's interpolate (fast on large images); ``order='nearest'`` for label masks.
    """
    if abs(factor - 1.0) < 1e-6:
        return image if hasattr(image, "device") else np.asarray(image)
    h, w = image.shape[-2:]
    size = (max(1, int(round(h * factor))), max(1, int(round(w * factor))))
    return resize(image, size, order=order)


def resize(image, size: tuple[int, int], order: str = "bilinear"):
    """Resize a 2D or ``(C, H, W)`` array or tensor to ``size`` = (H, W); a tensor stays on its device."""
    import torch
    import torch.nn.functional as F

    is_tensor = isinstance(image, torch.Tensor)
    arr = image if is_tensor else np.asarray(image)
    if tuple(arr.shape[-2:]) == tuple(size):
        return arr
    t = arr.float() if is_tensor else torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    squeeze = t.ndim == 2
    t = t[None, None] if squeeze else t[None]
    if order == "nearest":
        out = F.interpolate(t, size=size, mode="nearest-exact")
    else:
        shrinking = size[0] < arr.shape[-2] or size[1] < arr.shape[-1]
        out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
    out = out[0, 0] if squeeze else out[0]
    if is_tensor:
        return out.to(arr.dtype) if order == "nearest" else out
    result = out.numpy()
    return result.astype(arr.dtype, copy=False) if order == "nearest" else result
