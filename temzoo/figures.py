"""Plotly figures for micrographs: the image with an nm scale bar and percentile contrast, and its power spectrum.

Library-side (no Streamlit) so notebooks and the app draw the same thing. Images go to the browser as one PNG
(``go.Image(source=...)``), not as a JSON array of floats, so a 4k x 4k frame stays responsive; large frames are
block-averaged for display only.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np

from temzoo.io.units import format_length

DISPLAY_SIDE = 640  # side of the Segment page's map panels
OVERLAY_ALPHA = 0.45
OVERLAY_COLOUR = (255, 60, 40)

DISPLAY_MAX_SIDE = 1024  # display resolution cap (pixels per side) for the image view
FFT_MAX_SIDE = 2048  # the power spectrum uses a centre crop of at most this many pixels (keeps Nyquist)
FFT_DISPLAY_SIDE = 512


def contrast_limits(img: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Intensity limits at the ``low``/``high`` percentiles (finite pixels; a subsample of big images)."""
    a = np.asarray(img, dtype=np.float32)
    step = max(1, int(math.sqrt(a.size / 1_000_000)))
    sample = a[::step, ::step] if a.ndim == 2 else a.ravel()[:: step * step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, [low, high]))
    if hi <= lo:  # flat image (or low == high): widen so the colour map is defined
        lo, hi = float(sample.min()), float(sample.max())
        if hi <= lo:
            hi = lo + 1.0
    return lo, hi


def downsample(img: np.ndarray, max_side: int) -> tuple[np.ndarray, int]:
    """Block-mean by an integer factor so that both sides are at most ``max_side``; returns (image, factor)."""
    h, w = img.shape
    f = max(1, math.ceil(max(h, w) / max_side))
    if f == 1:
        return img, 1
    hh, ww = (h // f) * f, (w // f) * f
    return img[:hh, :ww].reshape(hh // f, f, ww // f, f).mean(axis=(1, 3)), f


def to_uint8(img: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    scaled = (np.asarray(img, dtype=np.float32) - vmin) / max(vmax - vmin, 1e-12)
    return (np.clip(np.nan_to_num(scaled), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def png_data_uri(img8: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img8).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``target`` (scale-bar lengths)."""
    if not target > 0:
        return 0.0
    k = math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * 10**k <= target:
            return m * 10**k
    return 10**k


def _image_figure(img8: np.ndarray, step: float, unit: str, title: str | None, height: int) -> Any:
    import plotly.graph_objects as go

    h, w = img8.shape
    fig = go.Figure(go.Image(source=png_data_uri(img8), x0=step / 2, dx=step, y0=step / 2, dy=step,
                             hovertemplate=f"x %{{x:.4g}} {unit}<br>y %{{y:.4g}} {unit}<extra></extra>"))
    # square pixels on screen; the unused space goes below/right of the image instead of around it
    fig.update_xaxes(title_text=f"x ({unit})", showgrid=False, zeroline=False, constrain="domain",
                     constraintoward="left")
    fig.update_yaxes(title_text=f"y ({unit})", showgrid=False, zeroline=False, scaleanchor="x", scaleratio=1,
                     constrain="domain", constraintoward="top")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10), title=title,
                      dragmode="zoom", plot_bgcolor="rgba(0,0,0,0)")
    return fig


def add_scale_bar(fig: Any, width: float, height: float, unit_nm: bool = True) -> float:
    """Draw a scale bar (white with a dark outline) at the lower left; returns its length in data units."""
    length = nice_length(0.2 * width)
    if length <= 0:
        return 0.0
    x0, y1 = 0.05 * width, 0.95 * height
    thickness = 0.012 * max(height, width)
    fig.add_shape(type="rect", x0=x0, x1=x0 + length, y0=y1 - thickness, y1=y1,
                  fillcolor="white", line=dict(color="black", width=1))
    label = format_length(length) if unit_nm else f"{length:g} px"
    fig.add_annotation(x=x0 + length / 2, y=y1 - thickness, yshift=4, yanchor="bottom", text=f"<b>{label}</b>",
                       showarrow=False, font=dict(color="white", size=14), bgcolor="rgba(0,0,0,0.45)")
    return length


def micrograph_figure(
    img: np.ndarray,
    pixel_size_nm: float | None,
    *,
    low: float = 0.5,
    high: float = 99.5,
    title: str | None = None,
    height: int | None = None,
    max_side: int = DISPLAY_MAX_SIDE,
) -> Any:
    """The image in nm coordinates (px if uncalibrated), contrast from percentiles, with a scale bar."""
    img = np.asarray(img, dtype=np.float32)
    if height is None:  # roughly fits a half-width column without empty bands (tall strips capped)
        height = int(np.clip(420 * img.shape[0] / img.shape[1] + 90, 300, 720))
    vmin, vmax = contrast_limits(img, low, high)
    small, f = downsample(img, max_side)
    px = pixel_size_nm if pixel_size_nm else 1.0
    unit = "nm" if pixel_size_nm else "px"
    fig = _image_figure(to_uint8(small, vmin, vmax), f * px, unit, title, height)
    h, w = img.shape
    add_scale_bar(fig, width=(small.shape[1] * f) * px, height=(small.shape[0] * f) * px, unit_nm=bool(pixel_size_nm))
    fig.update_layout(meta={"pixel_size_nm": pixel_size_nm, "shape": [h, w], "contrast": [vmin, vmax]})
    return fig


def power_spectrum(img: np.ndarray, *, max_side: int = FFT_MAX_SIDE) -> np.ndarray:
    """log10 |FFT|^2 of the centre square of ``img`` (Hann-windowed, mean removed), zero frequency centred."""
    a = np.asarray(img, dtype=np.float32)
    n = min(a.shape[0], a.shape[1], max_side)
    y0, x0 = (a.shape[0] - n) // 2, (a.shape[1] - n) // 2
    crop = a[y0 : y0 + n, x0 : x0 + n].astype(np.float64)
    crop -= crop.mean()
    window = np.outer(np.hanning(n), np.hanning(n)) if n > 2 else 1.0
    spec = np.fft.fftshift(np.abs(np.fft.fft2(crop * window)) ** 2)
    return np.log10(spec + 1e-12 * (spec.max() or 1.0) + 1e-30).astype(np.float32)


def power_spectrum_figure(
    img: np.ndarray, pixel_size_nm: float | None, *, title: str | None = None, height: int = 510
) -> Any:
    """Power spectrum with frequency axes in 1/nm (1/px if uncalibrated); Nyquist at the edges."""
    ps = power_spectrum(img)
    n = ps.shape[0]
    small, f = downsample(ps, FFT_DISPLAY_SIDE)
    vmin, vmax = contrast_limits(small, 1.0, 99.9)
    px = pixel_size_nm if pixel_size_nm else 1.0
    unit = "1/nm" if pixel_size_nm else "1/px"
    df = 1.0 / (n * px)  # frequency step of the full-resolution spectrum
    fig = _image_figure(to_uint8(small, vmin, vmax), f * df, unit, title, height)
    # shift so that zero frequency sits at 0: the centre pixel of an fftshifted even-size array is index n//2
    fig.data[0].x0 = -(n // 2) * df + f * df / 2
    fig.data[0].y0 = -(n // 2) * df + f * df / 2
    fig.update_xaxes(title_text=f"k_x ({unit})")
    fig.update_yaxes(title_text=f"k_y ({unit})", autorange=True)  # k_y upwards, as in a plot
    fig.update_layout(meta={"nyquist": 0.5 / px, "unit": unit, "crop": n})
    return fig


# ------------------------------------------------------------------------------------ Segment page
def tint(rgb: np.ndarray, mask: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """``rgb`` with the pixels where ``mask > 0`` blended towards the overlay colour (a new array)."""
    out = rgb.astype(np.float32)
    m = np.asarray(mask) > 0
    out[m] = (1 - alpha) * out[m] + alpha * np.asarray(OVERLAY_COLOUR, np.float32)
    return out.astype(np.uint8)


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


# ------------------------------------------------------------------------------- training curves
def metrics_figure(runs: dict[str, list[dict]], x: str = "epoch"):
    """Plotly figure: losses on the left, validation F1/IoU on the right, one colour per run."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Validation F1 / IoU"))
    for i, (name, recs) in enumerate(runs.items()):
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        xs = [r.get(x, j + 1) for j, r in enumerate(recs)]
        prefix = f"{name} " if len(runs) > 1 else ""
        for col, field, dash in ((1, "train_loss", "solid"), (1, "val_loss", "dot"), (2, "val_f1", "solid"),
                                 (2, "val_iou", "dot")):
            ys = [r.get(field) for r in recs]
            if any(isinstance(y, (int, float)) for y in ys):
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"{prefix}{field}",
                                         line={"color": color, "dash": dash}), row=1, col=col)
    xlabel = "seconds" if x == "seconds" else "epoch"
    fig.update_xaxes(title_text=xlabel)
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    fig.update_layout(height=360, margin={"l": 40, "r": 10, "t": 40, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return fig


def label_count_figure(rows: list[dict]) -> Any:
    """Best validation F1 against the number of labelled images, one line per strategy (the Compare page)."""
    import plotly.express as px

    fig = px.line(sorted(rows, key=lambda r: r["n_images"]), x="n_images", y="best_val_f1", color="strategy",
                  markers=True, labels={"n_images": "labelled training images", "best_val_f1": "best val F1"})
    fig.update_layout(height=300, margin={"l": 40, "r": 10, "t": 20, "b": 40})
    return fig


# ----------------------------------------------------------------------------------------- lessons
LESSON_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def lesson_image(img: np.ndarray, pixel_size_nm: float | None, title: str, height: int = 360) -> Any:

    return micrograph_figure(img, pixel_size_nm, title=title, height=height)


def lesson_spectrum(img: np.ndarray, pixel_size_nm: float | None, title: str = "Power spectrum", height: int = 360) -> Any:

    return power_spectrum_figure(img, pixel_size_nm, title=title, height=height)


def lesson_heat(arr: np.ndarray, pixel_size_nm: float, title: str, zmin: float = 0.0, zmax: float = 1.0,
         colorscale: Any = "Viridis", height: int = 360, contour: np.ndarray | None = None,
         contour_color: str = "white") -> Any:
    """A map in nm coordinates with a colour bar; ``contour``: a 0/1 mask outlined on top (e.g. the true particles)."""
    import plotly.graph_objects as go

    a = np.asarray(arr, dtype=np.float32)
    h, w = a.shape
    x = (np.arange(w) + 0.5) * pixel_size_nm
    y = (np.arange(h) + 0.5) * pixel_size_nm
    fig = go.Figure(go.Heatmap(z=a, x=x, y=y, zmin=zmin, zmax=zmax, colorscale=colorscale,
                               colorbar=dict(thickness=12),
                               hovertemplate="x %{x:.2f} nm<br>y %{y:.2f} nm<br>%{z:.3f}<extra></extra>"))
    if contour is not None:
        fig.add_trace(go.Contour(z=np.asarray(contour, dtype=np.float32), x=x, y=y, showscale=False,
                                 contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
                                 line=dict(color=contour_color, width=1.5), hoverinfo="skip", name="truth"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", scaleratio=1, title_text="y (nm)", constrain="domain")
    fig.update_xaxes(title_text="x (nm)", constrain="domain")
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def _lesson_lines(height: int = 340, title: str | None = None) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(height=height, title=title, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def lesson_dose_sweep(sw, current: float | None = None) -> Any:
    """SNR (left axis) and, with a model, F1 and mean confidence (right axis) against the dose, log scale."""
    import plotly.graph_objects as go

    fig = _lesson_lines(title=f"Dose sweep (defocus {sw.fixed:g} nm)")
    fig.add_trace(go.Scatter(x=sw.x, y=sw.snr, name="SNR", mode="lines+markers", line=dict(color=LESSON_COLORS[0])))
    if any(v is not None for v in sw.f1):
        fig.add_trace(go.Scatter(x=sw.x, y=sw.f1, name="model F1", yaxis="y2", mode="lines+markers",
                                 line=dict(color=LESSON_COLORS[1])))
        fig.add_trace(go.Scatter(x=sw.x, y=sw.mean_confidence, name="mean confidence", yaxis="y2",
                                 mode="lines+markers", line=dict(color=LESSON_COLORS[2], dash="dot")))
    fig.update_layout(xaxis=dict(type="log", title="dose (e/Å²)"), yaxis=dict(title="SNR"),
                      yaxis2=dict(title="F1 / confidence", overlaying="y", side="right", range=[0, 1.05], dtick=0.2,
                                  showgrid=False))
    if current:
        fig.add_vline(x=current, line=dict(color="grey", dash="dash"))
    return fig


def lesson_defocus_sweep(sw, current: float | None = None) -> Any:
    """Contrast (left) and, with a model, F1 and confidence (right) against the defocus."""
    import plotly.graph_objects as go

    fig = _lesson_lines(title=f"Defocus sweep (dose {sw.fixed:g} e/Å²)")
    fig.add_trace(go.Scatter(x=sw.x, y=sw.contrast, name="contrast (std/mean)", mode="lines+markers",
                             line=dict(color=LESSON_COLORS[0])))
    if any(v is not None for v in sw.f1):
        fig.add_trace(go.Scatter(x=sw.x, y=sw.f1, name="model F1", yaxis="y2", mode="lines+markers",
                                 line=dict(color=LESSON_COLORS[1])))
        fig.add_trace(go.Scatter(x=sw.x, y=sw.mean_confidence, name="mean confidence", yaxis="y2",
                                 mode="lines+markers", line=dict(color=LESSON_COLORS[2], dash="dot")))
    fig.update_layout(xaxis=dict(title="defocus (nm; positive = underfocus)"), yaxis=dict(title="contrast"),
                      yaxis2=dict(title="F1 / confidence", overlaying="y", side="right", range=[0, 1.05], dtick=0.2,
                                  showgrid=False))
    if current is not None:
        fig.add_vline(x=current, line=dict(color="grey", dash="dash"))
    return fig


def lesson_bands(res) -> Any:
    """Mean |change of probability| when each band is removed, with each band's share of the spectral power."""
    import plotly.graph_objects as go

    names = [f"{b.kind}<br>{b.name}" for b in res.bands]
    fig = _lesson_lines(title="Remove one band, measure the change")
    fig.add_trace(go.Bar(x=names, y=[b.mean_abs_change for b in res.bands], name="mean |Δ probability|",
                         marker_color=LESSON_COLORS[1]))
    fig.add_trace(go.Bar(x=names, y=[b.mask_change for b in res.bands], name="pixels that switch class",
                         marker_color=LESSON_COLORS[3]))
    fig.add_trace(go.Scatter(x=names, y=[b.power_fraction for b in res.bands], name="share of spectral power",
                             mode="markers", marker=dict(symbol="diamond", size=11, color=LESSON_COLORS[0])))
    fig.update_layout(barmode="group", yaxis=dict(title="fraction"))
    return fig


def lesson_receptive_field(res) -> Any:
    """The image with the receptive field (full extent and 95 % radius) drawn in nm around the particle centre."""
    from temzoo.lessons.dose_defocus import lesson_field_spec

    fig = lesson_image(res.image, res.pixel_size_nm, "Receptive field on the image", height=420)
    cx, cy = lesson_field_spec().particles[0].center_nm
    rf = res.receptive_field
    if rf.get("extent_nm"):
        r = rf["extent_nm"] / 2
        fig.add_shape(type="rect", x0=cx - r, x1=cx + r, y0=cy - r, y1=cy + r, line=dict(color="yellow", width=2))
        r95 = rf["radius95_nm"]
        fig.add_shape(type="circle", x0=cx - r95, x1=cx + r95, y0=cy - r95, y1=cy + r95,
                      line=dict(color="orange", width=2, dash="dash"))
        fig.add_annotation(x=cx, y=cy - r, yshift=-2, yanchor="bottom", showarrow=False,
                           text=f"full field {rf['extent_nm']:.2f} nm", font=dict(color="yellow"),
                           bgcolor="rgba(0,0,0,0.5)")
    return fig


def lesson_ruler(res) -> Any:
    """Three lengths on one nm axis: the lattice period, the effective (95 %) field diameter, the full field."""
    import plotly.graph_objects as go

    rf = res.receptive_field
    rows = [("lattice period", res.lattice_spacing_nm)]
    if rf.get("extent_nm"):
        rows += [("95 % of the field (diameter)", 2 * rf["radius95_nm"]), ("full receptive field", rf["extent_nm"])]
    fig = go.Figure(go.Bar(y=[r[0] for r in rows], x=[r[1] for r in rows], orientation="h",
                           marker_color=[LESSON_COLORS[2], LESSON_COLORS[4], LESSON_COLORS[0]][:len(rows)],
                           text=[f"{r[1]:.2f} nm = {r[1] / res.lattice_spacing_nm:.1f} periods" for r in rows],
                           textposition="auto"))
    fig.update_layout(height=240, title="Receptive field vs lattice period", xaxis_title="nm",
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def lesson_curves(curve_list, title: str, group=None, height: int = 340) -> Any:
    """Validation F1 against wall-clock seconds, one line per run (``group``: side-by-side panels by that key)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = sorted({group(c) for c in curve_list}) if group else [None]
    fig = make_subplots(rows=1, cols=len(keys), shared_yaxes=True,
                        subplot_titles=[f"{k} label{'s' if k != 1 else ''}" if group else "" for k in keys])
    styles: dict[str, int] = {}
    for c in curve_list:
        col = keys.index(group(c)) + 1 if group else 1
        kind = c.strategy if not group else ("scratch" if c.strategy == "scratch" else "pretrained")
        i = styles.setdefault(kind, len(styles))
        fig.add_trace(go.Scatter(x=c.seconds, y=c.val_f1, mode="lines+markers", name=kind,
                                 legendgroup=kind, showlegend=col == 1 or not group,
                                 line=dict(color=LESSON_COLORS[i % len(LESSON_COLORS)])), row=1, col=col)
        fig.update_xaxes(title_text="seconds of training", row=1, col=col)
    fig.update_yaxes(title_text="validation F1", range=[0, 1.02], row=1, col=1)
    fig.update_layout(height=height, title=title, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def lesson_parameters(counts: dict[str, dict]) -> Any:
    """Trainable parameters per strategy, stacked by part (encoder, decoder, head)."""
    import plotly.graph_objects as go

    names = list(counts)
    fig = go.Figure()
    for i, part in enumerate(("encoder", "decoder", "head")):
        fig.add_trace(go.Bar(x=names, y=[counts[s][f"{part}_trainable"] for s in names], name=part,
                             marker_color=LESSON_COLORS[i]))
    fig.update_layout(barmode="stack", height=320, title="Trainable parameters", yaxis_title="parameters",
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def lesson_reliability(before: dict, after: dict, temperature: float) -> Any:
    """Reliability diagram: accuracy per confidence bin before and after temperature scaling, with the diagonal."""
    import plotly.graph_objects as go

    fig = _lesson_lines(title="Reliability diagram (images of other fields)", height=380)
    fig.add_trace(go.Scatter(x=[0.5, 1], y=[0.5, 1], mode="lines", name="perfectly calibrated",
                             line=dict(color="grey", dash="dash")))
    for rel, name, color in ((before, f"before (ECE {before['ece']:.3f})", LESSON_COLORS[1]),
                             (after, f"after, T = {temperature:.2f} (ECE {after['ece']:.3f})", LESSON_COLORS[0])):
        conf = [c for c in rel["confidence"]]
        acc = [a for a in rel["accuracy"]]
        keep = [i for i, (c, a) in enumerate(zip(conf, acc)) if c == c and a == a]  # drop empty bins (NaN)
        fig.add_trace(go.Scatter(x=[conf[i] for i in keep], y=[acc[i] for i in keep], mode="lines+markers",
                                 name=name, line=dict(color=color),
                                 text=[f"{rel['count'][i]:,} pixels" for i in keep]))
    fig.update_layout(xaxis=dict(title="confidence", range=[0.5, 1.0]),
                      yaxis=dict(title="accuracy", range=[0.0, 1.02]))
    return fig


def size_distribution_figure(diameters: np.ndarray, unit: str, title: str = "Size distribution") -> Any:
    """Histogram of particle diameters (a batch's aggregated particle table)."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Histogram(x=np.asarray(diameters, float), marker_color="#4c72b0"))
    fig.update_layout(title=f"{title} ({len(diameters)} particles)", xaxis_title=f"equivalent diameter ({unit})",
                      yaxis_title="particles", height=320, margin=dict(l=40, r=10, t=40, b=40))
    return fig


def series_figure(series) -> Any:
    """Objects, coverage and mean size against the image's place in a series (a batch's series table)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    unit = str(series["size_unit"].iloc[0]) if len(series) else ""
    cols = [("objects", "objects"), ("coverage", "coverage"), ("mean_diameter", f"mean diameter ({unit})")]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for i, (col, label) in enumerate(cols, start=1):
        y = [float(v) if str(v) != "" else None for v in series[col]]
        fig.add_trace(go.Scatter(x=list(series["index"]), y=y, mode="lines+markers", name=label,
                                 text=list(series["name"])), row=i, col=1)
        fig.update_yaxes(title_text=label, row=i, col=1)
    fig.update_xaxes(title_text="image in series", row=3, col=1)
    fig.update_layout(height=520, showlegend=False, margin=dict(l=50, r=10, t=20, b=40))
    return fig


# ------------------------------------------------------------------------- static PNGs (batch output folders)
# The CLI writes these beside its CSVs, where no browser draws Plotly: the same two plots as
# size_distribution_figure / series_figure, drawn with matplotlib's Agg backend.
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display on servers and dask workers
    import matplotlib.pyplot as plt

    return plt


def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})  # no version string: same bytes every run
    _plt().close(fig)
    return buf.getvalue()


def size_histogram_png(diameters: np.ndarray, unit: str) -> bytes:
    """Histogram of equivalent diameters (a batch's sizes.png)."""
    plt = _plt()
    d = np.asarray(diameters, float)
    fig, ax = plt.subplots(figsize=(6, 4))
    if d.size:
        ax.hist(d, bins=min(40, max(5, int(np.sqrt(d.size)))), color="#4c72b0")
    ax.set_xlabel(f"equivalent diameter ({unit})")
    ax.set_ylabel("particles")
    ax.set_title(f"{d.size} particles")
    fig.tight_layout()
    return _figure_png(fig)


def series_png(series) -> bytes:
    """Objects, coverage and mean size against the image's place in the series, one panel each (series.png)."""
    plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(6, 7), sharex=True)
    unit = series["size_unit"].iloc[0] if len(series) else ""
    for ax, col, label in zip(axes, ("objects", "coverage", "mean_diameter"),
                              ("objects", "coverage (fraction)", f"mean diameter ({unit})")):
        ax.plot(series["index"], [float(v) if str(v) != "" else float("nan") for v in series[col]], "o-",
                color="#4c72b0", ms=3)
        ax.set_ylabel(label)
    axes[-1].set_xlabel("image in series (input order, then frame)")
    fig.tight_layout()
    return _figure_png(fig)
