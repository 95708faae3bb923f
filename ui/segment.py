"""Streamlit helpers for the Segment page: cached model loading, results cached per (image, model, options), and the
linked four-panel figure (image | mask overlay | confidence | importance).

Results live in ``st.session_state`` keyed on the frame's content hash + model + options, so switching a view,
moving a slider or downloading never recomputes a prediction; only a new image, model or option does.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import astuple
from typing import Any

import numpy as np
import streamlit as st

from temzoo.errors import TemzooError
from temzoo.export import tint

CACHE_KEY = "tz_segment_cache"
HASH_KEY = "tz_segment_hash"
MASK_KEY = "tz_segment_mask"  # (name, uint8 mask) uploaded for supervised metrics
# Entries kept per kind (key[0]); predictions and download bytes are the big ones (full-size maps).
MAX_ENTRIES = {"predict": 3, "explain": 4, "files": 2}
MAX_OTHER = 16
DISPLAY_SIDE = 640


# ----------------------------------------------------------------------------------------------------------- models
@st.cache_resource(max_entries=4, show_spinner="Loading model ...")
def load_checkpoint(ref: str):
    """Shared between sessions: predict/explain never modify it (they run a private per-device copy)."""
    from temzoo.zoo import load_model

    return load_model(ref)


@st.cache_data(ttl=60, show_spinner=False)
def zoo_choices() -> list[str]:
    """Segmentation models available on disk now (bundled, local, cached), default base first."""
    try:
        from temzoo.zoo import list_models

        return [m.ref for m in list_models(hub=False) if m.task == "segmentation" and m.path is not None]
    except TemzooError:
        return []


def default_model() -> str | None:
    models = zoo_choices()
    return models[0] if models else None


# ------------------------------------------------------------------------------------------------------------ cache
def frame_key(mg, frame: int) -> str:
    """Content hash of one frame (+ calibration), remembered per micrograph object so it is computed once."""
    memo = st.session_state.setdefault(HASH_KEY, {})
    k = (id(mg), frame, mg.pixel_size_nm)
    if k not in memo:
        img = np.ascontiguousarray(mg.frame(frame))
        h = hashlib.blake2b(img.view(np.uint8), digest_size=16)
        h.update(repr((img.shape, mg.pixel_size_nm)).encode())
        memo.clear()  # one micrograph at a time; ids of dead objects could be reused
        memo[k] = h.hexdigest()
    return memo[k]


def _cache() -> OrderedDict:
    c = st.session_state.get(CACHE_KEY)
    if c is None:
        c = OrderedDict()
        st.session_state[CACHE_KEY] = c
    return c


def cached(key: tuple, compute):
    """Return ``compute()`` for ``key``, computing it only once (LRU per kind ``key[0]``, see :data:`MAX_ENTRIES`)."""
    c = _cache()
    if key in c:
        c.move_to_end(key)
        return c[key]
    value = compute()
    c[key] = value
    kind = key[0]
    same = [k for k in c if k[0] == kind]
    for old in same[: max(0, len(same) - MAX_ENTRIES.get(kind, MAX_OTHER))]:
        del c[old]
    return value


def options_key(opts) -> tuple:
    return astuple(opts)


def progress_bar(text: str):
    bar = st.progress(0.0, text=text)

    def cb(f: float, msg: str = "") -> None:
        bar.progress(float(min(max(f, 0.0), 1.0)), text=f"{text} {msg}")

    return bar, cb


def scale_line(pred) -> str:
    """How the image was scaled for the model, in words that never print a missing number ("- nm/px")."""
    from temzoo.io.units import format_nm

    f = float(pred.info.get("scale_factor", 1.0))
    how = "used at its own scale" if abs(f - 1) < 1e-6 else f"resampled x{f:.3g}"
    if pred.pixel_size_nm and pred.resampled_to_nm and abs(pred.pixel_size_nm - pred.resampled_to_nm) > 1e-9:
        return f"{how} from {format_nm(pred.pixel_size_nm)} to the model's {format_nm(pred.resampled_to_nm)}"
    if pred.pixel_size_nm:
        return f"{how} at {format_nm(pred.pixel_size_nm)}"
    return f"{how}; no pixel size (give it on the Load page for sizes in nm)"


def summary_metrics(summary: dict) -> None:
    """The label-free numbers of the class's kind: objects (count, cut by the edge, convex) or a network (grains)."""
    unit = summary["size_unit"]
    m = st.columns(7)
    if summary["kind"] == "network":
        m[0].metric("Grains", summary["n_grains"], help="Regions enclosed by the predicted boundary network")
        m[1].metric("Convex grains", summary["convex_grains"], help="Ochoa et al.'s annotation-free grain count")
        m[2].metric("Grains inside the field", summary["n_grains_interior"], help="Not cut by the image edge")
    else:
        m[0].metric("Objects", summary["n_objects"])
        m[1].metric("Convex objects", summary["convex_objects"], help="Ochoa et al.'s annotation-free count")
        m[2].metric("Cut by the edge", summary["n_edge_objects"],
                    help="Touch the image border: flagged, and left out of the sizes by default")
    m[3].metric("Foreground", f"{100 * summary['foreground_fraction']:.1f} %")
    m[4].metric("Mean confidence", f"{summary['mean_confidence']:.3f}")
    md = summary["median_diameter"]
    what = "Median grain diameter" if summary["kind"] == "network" else "Median diameter"
    m[5].metric(what, f"{md:.3g} {unit}" if md is not None else "-",
                help="Objects cut by the image edge are left out unless counted (the toggle above)")
    m[6].metric("Uncertain pixels", f"{100 * summary['uncertain_fraction']:.1f} %",
                help=f"confidence below {summary['uncertain_below']}")


SUPERVISED_KEYS = {"objects": ["f1", "iou", "precision", "recall", "object_f1", "count_error", "size_distance", "ece"],
                   "network": ["f1", "iou", "precision", "recall", "n_pred_grains", "n_true_grains",
                               "size_distance", "ece"]}
SUPERVISED_LABELS = {"n_pred_grains": "grains (model)", "n_true_grains": "grains (mask)",
                     "size_distance": "size distance (Wasserstein)"}


def supervised_metrics_row(sup: dict) -> None:
    """Metrics against a human mask for the class's kind (no object F1 or count error for a network)."""
    keys = SUPERVISED_KEYS[sup.get("kind", "objects")]
    for col, k in zip(st.columns(len(keys)), keys):
        v = sup.get(k)
        col.metric(SUPERVISED_LABELS.get(k, k), "-" if v is None else (str(v) if isinstance(v, int) else f"{v:.3f}"))


def size_comparison_figure(sup: dict, unit: str) -> Any:
    """The model's size distribution beside the human one (Horwath et al.), with their Wasserstein distance."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for key, name, colour in (("pred_sizes", "model", "#e45756"), ("true_sizes", "human mask", "#4c78a8")):
        fig.add_trace(go.Histogram(x=np.asarray(sup.get(key) or [], float), name=name, opacity=0.6,
                                   marker_color=colour, nbinsx=30))
    d = sup.get("size_distance")
    what = "Grain sizes" if sup.get("kind") == "network" else "Sizes"
    fig.update_layout(barmode="overlay", height=280, margin=dict(l=10, r=10, t=40, b=10),
                      title=f"{what}: model vs human mask (Wasserstein {'-' if d is None else f'{d:.3g} {unit}'})",
                      xaxis_title=f"equivalent diameter ({unit})", yaxis_title="count")
    return fig


def domain_line(domain) -> str:
    """The domain-shift score in words (temzoo.ood), or why there is none."""
    if domain.score is None:
        return "No domain-shift reference in this model's temzoo.json. "
    verdict = "unlike its training images" if domain.score > domain.threshold else "like its training images"
    return f"Domain-shift score {domain.score:.2f} (warns above {domain.threshold:.2f}): {verdict}. "


# --------------------------------------------------------------------------------------------------------- figures
def _lut(name: str) -> np.ndarray:
    from plotly.colors import sample_colorscale

    cols = sample_colorscale(name, list(np.linspace(0, 1, 256)))
    out = []
    for c in cols:
        c = c.strip()
        if c.startswith("#"):
            out.append([int(c[i:i + 2], 16) for i in (1, 3, 5)])
        else:
            out.append([int(round(float(v))) for v in c[c.index("(") + 1:c.index(")")].split(",")[:3]])
    return np.asarray(out, np.uint8)


def _colorize(a: np.ndarray, vmin: float, vmax: float, scale: str) -> np.ndarray:
    idx = np.clip((np.nan_to_num(a) - vmin) / max(vmax - vmin, 1e-12), 0, 1)
    return _lut(scale)[(idx * 255).astype(np.uint8)]


def _grey(img: np.ndarray) -> np.ndarray:
    from temzoo.viz import contrast_limits, to_uint8

    lo, hi = contrast_limits(img)
    g = to_uint8(img, lo, hi)
    return np.repeat(g[..., None], 3, axis=2)


def _png(rgb: np.ndarray) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def maps_figure(image: np.ndarray, prediction, importance: np.ndarray | None, box: tuple | None = None,
                confidence_map: str = "confidence", height: int = 340, window: tuple | None = None) -> Any:
    """Four panels with shared (linked) axes in nm (px when uncalibrated): zooming one zooms all. ``window``
    (y0, x0, y1, x1 px): the attribution window when it is not the whole image, drawn dashed on the importance."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from temzoo.viz import downsample

    px = prediction.pixel_size_nm or 1.0
    unit = "nm" if prediction.pixel_size_nm else "px"
    small, f = downsample(np.asarray(image, np.float32), DISPLAY_SIDE)
    grey = _grey(small)

    def ds(a):
        return downsample(np.asarray(a, np.float32), DISPLAY_SIDE)[0]

    mask_small = ds(prediction.mask > 0) >= 0.5
    conf = prediction.maps.get(confidence_map, prediction.confidence) if confidence_map != "confidence" \
        else prediction.confidence
    conf_s = ds(conf)
    if confidence_map == "confidence":
        lo = 0.5 if prediction.probability.ndim == 2 else 0.0
        conf_rgb, crange = _colorize(conf_s, lo, 1.0, "Viridis"), (lo, 1.0)
    else:
        hi = float(np.percentile(conf_s, 99.5)) or 1.0
        conf_rgb, crange = _colorize(conf_s, 0.0, hi, "Magma"), (0.0, hi)
    titles = ["image", "mask overlay", f"{confidence_map} [{crange[0]:.2g}, {crange[1]:.2g}]", "importance"]
    panels = [grey, tint(grey, mask_small), conf_rgb]
    if importance is not None:
        imp = ds(importance)
        m = float(np.percentile(np.abs(imp), 99.5)) or 1.0
        if imp.min() < 0:
            panels.append(_colorize(imp, -m, m, "RdBu_r"))
            titles[3] = f"importance (signed, +/-{m:.2g})"
        else:
            panels.append(_colorize(imp, 0.0, m, "Inferno"))
            titles[3] = f"importance [0, {m:.2g}]"
    else:
        panels.append(np.full_like(grey, 235))
        titles[3] = "importance: pick a method and press Explain"
    fig = make_subplots(rows=1, cols=4, shared_xaxes="all", shared_yaxes="all", horizontal_spacing=0.012,
                        subplot_titles=titles)
    step = f * px
    hover = f"x %{{x:.4g}} {unit}<br>y %{{y:.4g}} {unit}<extra></extra>"
    for i, rgb in enumerate(panels):
        fig.add_trace(go.Image(source=_png(rgb), x0=step / 2, dx=step, y0=step / 2, dy=step, hovertemplate=hover),
                      row=1, col=i + 1)
    if box is not None:
        y0, x0, y1, x1 = box
        for i in range(4):
            fig.add_shape(type="rect", x0=x0 * px, x1=x1 * px, y0=y0 * px, y1=y1 * px, row=1, col=i + 1,
                          line=dict(color="#00e5ff", width=2))
    if window is not None:
        y0, x0, y1, x1 = window
        fig.add_shape(type="rect", x0=x0 * px, x1=x1 * px, y0=y0 * px, y1=y1 * px, row=1, col=4,
                      line=dict(color="#ffd400", width=2, dash="dash"))
    fig.update_xaxes(showgrid=False, zeroline=False, constrain="domain", title_text=None)
    fig.update_yaxes(showgrid=False, zeroline=False, scaleanchor="x", scaleratio=1, constrain="domain",
                     autorange="reversed")
    fig.update_layout(height=height, margin=dict(l=5, r=5, t=40, b=5), dragmode="zoom",
                      meta={"unit": unit, "panels": titles})
    for a in fig.layout.annotations:
        a.font = dict(size=12)
    return fig


def histogram(values, title: str, x_title: str) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(go.Histogram(x=np.asarray(values, float), nbinsx=30, marker_color="#4c78a8"))
    fig.update_layout(title=title, height=260, margin=dict(l=10, r=10, t=40, b=10), xaxis_title=x_title,
                      yaxis_title="count", bargap=0.05)
    return fig


def reliability_figure(rel) -> Any:
    import plotly.graph_objects as go

    centres = (rel.bin_edges[:-1] + rel.bin_edges[1:]) / 2
    ok = rel.count > 0
    fig = go.Figure()
    fig.add_trace(go.Bar(x=centres[ok], y=rel.accuracy[ok], width=(rel.bin_edges[1] - rel.bin_edges[0]) * 0.9,
                         name="accuracy", marker_color="#4c78a8"))
    fig.add_trace(go.Scatter(x=[rel.bin_edges[0], 1], y=[rel.bin_edges[0], 1], mode="lines", name="perfect",
                             line=dict(dash="dash", color="gray")))
    fig.add_trace(go.Scatter(x=centres[ok], y=rel.confidence[ok], mode="markers", name="mean confidence",
                             marker=dict(color="#e45756")))
    fig.update_layout(title=f"Reliability diagram (ECE {rel.ece:.3f})", height=300,
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title="confidence", yaxis_title="accuracy",
                      yaxis_range=[0, 1.02])
    return fig


def bands_figure(bands) -> Any:
    import plotly.graph_objects as go

    names = [b.name for b in bands.bands]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=names, y=[b.mean_abs_change for b in bands.bands], name="mean |change| of probability",
                         marker_color="#f58518"))
    fig.add_trace(go.Bar(x=names, y=[b.mask_change for b in bands.bands], name="fraction of pixels flipped",
                         marker_color="#54a24b"))
    fig.update_layout(title="What the prediction loses when one band of spatial periods is removed", height=300,
                      barmode="group", margin=dict(l=10, r=10, t=40, b=10), xaxis_title=f"period ({bands.unit})")
    return fig


def read_uploaded_mask(data: bytes, name: str) -> None:
    """Read an uploaded mask (via temzoo.io.masks, from a private temporary file) into session state."""
    import tempfile
    from pathlib import Path

    from temzoo.io import safe_filename
    from temzoo.io.masks import read_mask

    prev = st.session_state.get(MASK_KEY)
    digest = hashlib.sha256(data).hexdigest()[:16]
    if prev is not None and prev[0].endswith(digest):
        return
    with tempfile.TemporaryDirectory(prefix="temzoo-mask-") as tmp:
        p = Path(tmp) / safe_filename(name)
        p.write_bytes(data)
        mask = read_mask(p)
    st.session_state[MASK_KEY] = (f"{name}#{digest}", mask)
