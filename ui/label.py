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


def view_box(shape: tuple[int, int], zoom: int, cx: float, cy: float) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the part of the frame the canvas shows: 1/zoom of each side, centred at (cx, cy) in
    0..1 of the width and height and kept inside the frame. Same aspect as the frame, so the canvas keeps its size."""
    h, w = shape
    vh, vw = max(1, round(h / zoom)), max(1, round(w / zoom))
    y0 = min(max(0, round(cy * h - vh / 2)), h - vh)
    x0 = min(max(0, round(cx * w - vw / 2)), w - vw)
    return y0, y0 + vh, x0, x0 + vw


WORK = "label_work"  # the mask being drawn, full frame size: what earlier views (zoom/pan) left
WORK_ID = "label_work_id"  # what it started from (image, frame, start, threshold, saves)
LAST = "label_last"  # the mask as of the last run (the work plus the current view's strokes)
VIEW = "label_view"  # (zoom, x, y) of the canvas; another view commits LAST into WORK
VIEW_N = "label_view_n"  # bumped with every new view or start, so each gets a fresh canvas


def working_mask(start_id: tuple, start, shape: tuple[int, int], view: tuple) -> tuple[np.ndarray, int]:
    """The mask to draw on (full size) and the canvas generation. A new start (another image, start mask or
    threshold, or after a save) begins from ``start()`` (a mask or None); a new view keeps every stroke so far."""
    ss = st.session_state
    if ss.get(WORK_ID) != start_id:
        m = start()
        ss[WORK] = np.zeros(shape, bool) if m is None else np.asarray(m, bool)
        ss[WORK_ID], ss[LAST], ss[VIEW] = start_id, ss[WORK], view
        ss[VIEW_N] = ss.get(VIEW_N, 0) + 1
    elif ss.get(VIEW) != view:
        ss[WORK], ss[VIEW] = ss.get(LAST, ss[WORK]), view
        ss[VIEW_N] = ss.get(VIEW_N, 0) + 1
    return ss[WORK], ss[VIEW_N]


def remember_mask(mask: np.ndarray) -> None:
    st.session_state[LAST] = mask


def prediction(model_ref: str, mg, frame: int):
    """The current model's prediction of the frame at default options: the Segment page's, when it made one."""
    from temzoo.predict import PredictOptions, predict
    from ui import segment as seg

    opts = PredictOptions()
    key = ("predict", seg.frame_key(mg, frame), model_ref, (), seg.options_key(opts))
    ck = seg.load_checkpoint(model_ref)
    with st.spinner(f"Segmenting with {model_ref} ..."):
        return seg.cached(key, lambda: predict(ck, mg, opts, frame=frame))
