"""The NumPy inference path as it was before issue 17 moved predict onto the device, kept as the oracle that
tests/test_predict_device.py compares the device pipeline against (normalise, pad, blend and finish in NumPy; the
network itself runs per tile through the same forward)."""

from __future__ import annotations

import numpy as np
import torch


def normalize_np(image: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> np.ndarray:
    x = np.asarray(image, dtype=np.float32)
    step = max(1, int(np.sqrt(x.size / 262144)))
    p_lo, p_hi = np.percentile(x[::step, ::step], [lo, hi])
    x = np.clip(x, p_lo, p_hi)
    std = float(x.std())
    return ((x - float(x.mean())) / (std if std > 1e-12 else 1.0)).astype(np.float32)


def resize_np(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]
    shrinking = size[0] < a.shape[-2] or size[1] < a.shape[-1]
    return torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False,
                                           antialias=shrinking)[0].numpy()


def reference_predict(ck, image: np.ndarray, pixel_size_nm: float, opts) -> dict[str, np.ndarray]:
    """mask, probability, confidence, entropy (+ tta maps) of the old NumPy pipeline, CPU only."""
    from temzoo.predict import _tile_samples, runtime_model
    from temzoo.confidence import summarize_samples
    from temzoo.tiling import TileGrid, padded_size

    dev = torch.device("cpu")
    factor = pixel_size_nm / ck.meta.pixel_size_nm
    h0, w0 = image.shape
    size = (max(1, int(round(h0 * factor))), max(1, int(round(w0 * factor))))
    img = resize_np(image[None], size)[0] if size != image.shape else image
    x = normalize_np(img, *ck.meta.norm.clip_percentiles)
    stride = ck.spec.stride
    h, w = x.shape
    ph, pw = padded_size(h, stride) - h, padded_size(w, stride) - w
    padded = np.pad(x, ((0, ph), (0, pw)), mode="reflect" if ph < h and pw < w else "symmetric")
    grid = TileGrid.for_image(padded.shape, opts.tile_size or 1024, opts.overlap, stride)
    n_samples = 8 if opts.tta else 1
    C = ck.spec.classes
    acc = np.zeros((C + (2 if n_samples > 1 else 0), *padded.shape), np.float32)
    wsum = np.zeros(padded.shape, np.float32)
    model = runtime_model(ck.model, dev)
    th, tw = grid.tile_h, grid.tile_w
    with torch.inference_mode():
        for y, x0 in grid.boxes:
            t = torch.from_numpy(np.ascontiguousarray(padded[y:y + th, x0:x0 + tw]))[None, None]
            samples = _tile_samples(model, t, dev, opts)
            if n_samples > 1:
                st = summarize_samples(samples)
                out = torch.cat([st.mean, st.spread[:, None], st.mean_entropy[:, None]], dim=1)
            else:
                out = samples[0]
            wt = grid.weight(y, x0)
            acc[:, y:y + th, x0:x0 + tw] += out[0].numpy() * wt
            wsum[y:y + th, x0:x0 + tw] += wt
    maps = (acc / wsum)[:, :h, :w]
    if maps.shape[-2:] != (h0, w0):
        maps = resize_np(maps, (h0, w0))
    probs = np.clip(maps[:C], 0, 1)
    if C > 1:
        probs = probs / np.maximum(probs.sum(0, keepdims=True), 1e-6)
    p = probs[0] if C == 1 else probs
    cls = np.stack([1 - p, p]) if p.ndim == 2 else p
    q = np.clip(cls, 1e-6, 1.0)
    ent = -(q * np.log(q)).sum(0)
    out = {"mask": (p >= opts.threshold).astype(np.uint8) if p.ndim == 2 else p.argmax(0).astype(np.uint8),
           "probability": p, "confidence": np.maximum(p, 1 - p) if p.ndim == 2 else p.max(0), "entropy": ent}
    if n_samples > 1:
        out["tta_spread"] = maps[C]
        out["tta_mutual_information"] = np.maximum(ent - maps[C + 1], 0)
    return out
