"""Plotly figures for the lessons (library side, no Streamlit: a notebook draws the same thing as the Teach page)."""

from __future__ import annotations

from typing import Any

import numpy as np

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def image(img: np.ndarray, pixel_size_nm: float | None, title: str, height: int = 360) -> Any:
    from temzoo.viz import micrograph_figure

    return micrograph_figure(img, pixel_size_nm, title=title, height=height)


def spectrum(img: np.ndarray, pixel_size_nm: float | None, title: str = "Power spectrum", height: int = 360) -> Any:
    from temzoo.viz import power_spectrum_figure

    return power_spectrum_figure(img, pixel_size_nm, title=title, height=height)


def heat(arr: np.ndarray, pixel_size_nm: float, title: str, zmin: float = 0.0, zmax: float = 1.0,
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


def _lines(height: int = 340, title: str | None = None) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(height=height, title=title, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def dose_sweep(sw, current: float | None = None) -> Any:
    """SNR (left axis) and, with a model, F1 and mean confidence (right axis) against the dose, log scale."""
    import plotly.graph_objects as go

    fig = _lines(title=f"Dose sweep (defocus {sw.fixed:g} nm)")
    fig.add_trace(go.Scatter(x=sw.x, y=sw.snr, name="SNR", mode="lines+markers", line=dict(color=COLORS[0])))
    if any(v is not None for v in sw.f1):
        fig.add_trace(go.Scatter(x=sw.x, y=sw.f1, name="model F1", yaxis="y2", mode="lines+markers",
                                 line=dict(color=COLORS[1])))
        fig.add_trace(go.Scatter(x=sw.x, y=sw.mean_confidence, name="mean confidence", yaxis="y2",
                                 mode="lines+markers", line=dict(color=COLORS[2], dash="dot")))
    fig.update_layout(xaxis=dict(type="log", title="dose (e/Å²)"), yaxis=dict(title="SNR"),
                      yaxis2=dict(title="F1 / confidence", overlaying="y", side="right", range=[0, 1.05], dtick=0.2,
                                  showgrid=False))
    if current:
        fig.add_vline(x=current, line=dict(color="grey", dash="dash"))
    return fig


def defocus_sweep(sw, current: float | None = None) -> Any:
    """Contrast (left) and, with a model, F1 and confidence (right) against the defocus."""
    import plotly.graph_objects as go

    fig = _lines(title=f"Defocus sweep (dose {sw.fixed:g} e/Å²)")
    fig.add_trace(go.Scatter(x=sw.x, y=sw.contrast, name="contrast (std/mean)", mode="lines+markers",
                             line=dict(color=COLORS[0])))
    if any(v is not None for v in sw.f1):
        fig.add_trace(go.Scatter(x=sw.x, y=sw.f1, name="model F1", yaxis="y2", mode="lines+markers",
                                 line=dict(color=COLORS[1])))
        fig.add_trace(go.Scatter(x=sw.x, y=sw.mean_confidence, name="mean confidence", yaxis="y2",
                                 mode="lines+markers", line=dict(color=COLORS[2], dash="dot")))
    fig.update_layout(xaxis=dict(title="defocus (nm; positive = underfocus)"), yaxis=dict(title="contrast"),
                      yaxis2=dict(title="F1 / confidence", overlaying="y", side="right", range=[0, 1.05], dtick=0.2,
                                  showgrid=False))
    if current is not None:
        fig.add_vline(x=current, line=dict(color="grey", dash="dash"))
    return fig


def bands(res) -> Any:
    """Mean |change of probability| when each band is removed, with each band's share of the spectral power."""
    import plotly.graph_objects as go

    names = [f"{b.kind}<br>{b.name}" for b in res.bands]
    fig = _lines(title="Remove one band, measure the change")
    fig.add_trace(go.Bar(x=names, y=[b.mean_abs_change for b in res.bands], name="mean |Δ probability|",
                         marker_color=COLORS[1]))
    fig.add_trace(go.Bar(x=names, y=[b.mask_change for b in res.bands], name="pixels that switch class",
                         marker_color=COLORS[3]))
    fig.add_trace(go.Scatter(x=names, y=[b.power_fraction for b in res.bands], name="share of spectral power",
                             mode="markers", marker=dict(symbol="diamond", size=11, color=COLORS[0])))
    fig.update_layout(barmode="group", yaxis=dict(title="fraction"))
    return fig


def receptive_field(res) -> Any:
    """The image with the receptive field (full extent and 95 % radius) drawn in nm around the particle centre."""
    from temzoo.lessons.dose_defocus import lesson_field_spec

    fig = image(res.image, res.pixel_size_nm, "Receptive field on the image", height=420)
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


def ruler(res) -> Any:
    """Three lengths on one nm axis: the lattice period, the effective (95 %) field diameter, the full field."""
    import plotly.graph_objects as go

    rf = res.receptive_field
    rows = [("lattice period", res.lattice_spacing_nm)]
    if rf.get("extent_nm"):
        rows += [("95 % of the field (diameter)", 2 * rf["radius95_nm"]), ("full receptive field", rf["extent_nm"])]
    fig = go.Figure(go.Bar(y=[r[0] for r in rows], x=[r[1] for r in rows], orientation="h",
                           marker_color=[COLORS[2], COLORS[4], COLORS[0]][:len(rows)],
                           text=[f"{r[1]:.2f} nm = {r[1] / res.lattice_spacing_nm:.1f} periods" for r in rows],
                           textposition="auto"))
    fig.update_layout(height=240, title="Receptive field vs lattice period", xaxis_title="nm",
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def curves(curve_list, title: str, group=None, height: int = 340) -> Any:
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
                                 line=dict(color=COLORS[i % len(COLORS)])), row=1, col=col)
        fig.update_xaxes(title_text="seconds of training", row=1, col=col)
    fig.update_yaxes(title_text="validation F1", range=[0, 1.02], row=1, col=1)
    fig.update_layout(height=height, title=title, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def parameters(counts: dict[str, dict]) -> Any:
    """Trainable parameters per strategy, stacked by part (encoder, decoder, head)."""
    import plotly.graph_objects as go

    names = list(counts)
    fig = go.Figure()
    for i, part in enumerate(("encoder", "decoder", "head")):
        fig.add_trace(go.Bar(x=names, y=[counts[s][f"{part}_trainable"] for s in names], name=part,
                             marker_color=COLORS[i]))
    fig.update_layout(barmode="stack", height=320, title="Trainable parameters", yaxis_title="parameters",
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def reliability(before: dict, after: dict, temperature: float) -> Any:
    """Reliability diagram: accuracy per confidence bin before and after temperature scaling, with the diagonal."""
    import plotly.graph_objects as go

    fig = _lines(title="Reliability diagram (images of other fields)", height=380)
    fig.add_trace(go.Scatter(x=[0.5, 1], y=[0.5, 1], mode="lines", name="perfectly calibrated",
                             line=dict(color="grey", dash="dash")))
    for rel, name, color in ((before, f"before (ECE {before['ece']:.3f})", COLORS[1]),
                             (after, f"after, T = {temperature:.2f} (ECE {after['ece']:.3f})", COLORS[0])):
        conf = [c for c in rel["confidence"]]
        acc = [a for a in rel["accuracy"]]
        keep = [i for i, (c, a) in enumerate(zip(conf, acc)) if c == c and a == a]  # drop empty bins (NaN)
        fig.add_trace(go.Scatter(x=[conf[i] for i in keep], y=[acc[i] for i in keep], mode="lines+markers",
                                 name=name, line=dict(color=color),
                                 text=[f"{rel['count'][i]:,} pixels" for i in keep]))
    fig.update_layout(xaxis=dict(title="confidence", range=[0.5, 1.0]),
                      yaxis=dict(title="accuracy", range=[0.0, 1.02]))
    return fig
