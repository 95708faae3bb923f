"""Display helpers for the Label page: contrast-stretched, downscaled views and mask overlays (RGB PIL images)."""

from __future__ import annotations

import numpy as np
import streamlit as st

LABEL_RGBA = "rgba(255, 0, 0, 0.45)"  # strokes that add to the mask
ERASE_RGBA = "rgba(0, 90, 255, 0.45)"  # strokes that remove from it (temzoo.train.labelset.strokes_to_mask)


def stretch(img: np.ndarray, lo: float = 1.0, hi: float = 99.0) -> np.ndarray:
    """uint8 view with the 1-99 percentile range mapped to 0-255 (TEM images rarely use their full range)."""
    a = np.nan_to_num(np.asarray(img, np.float32))
    p0, p1 = np.percentile(a, [lo, hi])
    if p1 <= p0:
        p0, p1 = float(a.min()), float(a.max()) or 1.0
    return (np.clip((a - p0) / max(p1 - p0, 1e-12), 0, 1) * 255).astype(np.uint8)


def display_size(shape: tuple[int, int], max_side: int = 720) -> tuple[int, int]:
    """(width, height) of the canvas: the longer side scaled to ``max_side`` (small images enlarged at most 4x)."""
    h, w = shape
    f = min(4.0, max_side / max(h, w))
    return max(1, round(w * f)), max(1, round(h * f))


def overlay(img: np.ndarray, mask: np.ndarray | None, size: tuple[int, int] | None = None, alpha: float = 0.4):
    """RGB PIL image: the stretched micrograph with the mask tinted red, resized to ``size`` (w, h)."""
    from PIL import Image

    g = stretch(img)
    rgb = np.repeat(g[..., None], 3, axis=2).astype(np.float32)
    if mask is not None:
        m = np.asarray(mask, bool)
        rgb[m] = rgb[m] * (1 - alpha) + np.array([255, 0, 0]) * alpha
    out = Image.fromarray(rgb.astype(np.uint8))
    return out.resize(size, Image.BILINEAR) if size else out


@st.cache_data(max_entries=256, show_spinner=False)
def thumbnail(image_path: str, mask_path: str, mtime: float, side: int = 200):
    """Overlay thumbnail of a stored pair (cached by path and modification time)."""
    from temzoo.io import read_micrograph
    from temzoo.io.masks import read_mask

    img = read_micrograph(image_path).frame(0)
    m = read_mask(mask_path) > 0
    return overlay(img, m, display_size(img.shape[:2], side))
