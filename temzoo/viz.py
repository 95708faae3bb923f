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
