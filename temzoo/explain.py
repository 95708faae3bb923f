"""What in the image the model relied on: captum attributions, Grad-CAM, Fourier-band ablation, receptive field.

Attributions explain the mean foreground logit over a region (a box, a mask, or by default the predicted
foreground). They are computed on a crop of the model grid holding the region plus one receptive field of context
(pixels further away cannot influence it), then mapped back to the frame's own grid.

Fourier-band importance answers Horwath et al. / Sytwu et al.'s question -- does the net use lattice fringes or
mass-thickness contrast? -- by removing one band of spatial frequencies at a time and measuring how much the
prediction changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from temzoo.errors import DataError

METHODS = ("integrated-gradients", "occlusion", "gradcam", "fourier")


# CPU cost per pixel differs by method: Grad-CAM is one backward pass, IG ig_steps of them, occlusion one forward
# per window position.
MAX_SIDE = {"gradcam": 4096, "integrated-gradients": 1024, "occlusion": 768}


@dataclass
class ExplainOptions:
    ig_steps: int = 16
    occlusion_window: int | None = None  # model px; None: a sixth of the crop (8..48)
    occlusion_stride: int | None = None  # None: half the window
    gradcam_block: int = -2  # index into model.decoder.blocks (-2: one above full resolution)
    # the attribution window covers the whole image up to this many model px a side (None: MAX_SIDE per method);
    # a larger image gets a window around the region's centre, drawn and explained (info["window_note"])
    max_side: int | None = None
    device: str = "auto"


@dataclass
class Explanation:
    """An importance map on the frame's own grid, with the region it explains."""

    method: str
    importance: np.ndarray  # float32 (H, W); signed for integrated gradients / occlusion
    region: np.ndarray  # bool (H, W)
    seconds: float
    info: dict = field(default_factory=dict)


def _attr_model(checkpoint, device):
    # The runtime copy: parameters do not require grad, so attributions never write .grad into a shared model.
    from temzoo.predict import runtime_model

    return runtime_model(checkpoint.model, device)


def _region_on_model_grid(region, prep, default_mask: np.ndarray | None) -> np.ndarray:
    """Region (box ``(y0, x0, y1, x1)`` in original px, or a bool mask on the original grid) on the model grid."""
    from temzoo.preprocess import resize

    h, w = prep.original_shape
    if region is None:
        if default_mask is None or not default_mask.any():
            m = np.ones((h, w), bool)
        else:
            m = default_mask.astype(bool)
    elif isinstance(region, (tuple, list)) and len(region) == 4:
        y0, x0, y1, x1 = (int(round(v)) for v in region)
        y0, y1 = sorted((max(0, y0), min(h, y1)))
        x0, x1 = sorted((max(0, x0), min(w, x1)))
        if y1 - y0 < 1 or x1 - x0 < 1:
            raise DataError(f"region box {tuple(region)} is empty inside the {h}x{w} image; pick a box inside it")
        m = np.zeros((h, w), bool)
        m[y0:y1, x0:x1] = True
    else:
        m = np.asarray(region).astype(bool)
        if m.shape != (h, w):
            raise DataError(f"region mask shape {m.shape} differs from the image's {(h, w)}")
        if not m.any():
            raise DataError("region mask is empty; mark at least one pixel")
    mg = resize(m.astype(np.float32), prep.image.shape, order="bilinear") >= 0.5
    if not mg.any():  # a region thinner than one model pixel
        mg = resize(m.astype(np.float32), prep.image.shape, order="bilinear") > 0
    return mg


def _crop_box(mask: np.ndarray, margin: int, max_side: int, stride: int) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    h, w = mask.shape

    def axis(lo, hi, n):
        lo, hi = max(0, lo - margin), min(n, hi + margin)
        if hi - lo > max_side:
            c = (lo + hi) // 2
            lo, hi = max(0, c - max_side // 2), min(n, c - max_side // 2 + max_side)
        # Grow to a stride multiple where the image allows (the net needs it; padding would add fake context).
        size = min(n, -(-(hi - lo) // stride) * stride)
        lo = max(0, min(lo, n - size))
        return lo, lo + size

    y0, y1 = axis(int(ys.min()), int(ys.max()) + 1, h)
    x0, x1 = axis(int(xs.min()), int(xs.max()) + 1, w)
    return y0, x0, y1, x1


class _RegionLogit:
    """``f(x) -> (B,)``: mean logit of ``target`` over the region (logits, so saturated pixels still count)."""

    def __init__(self, model, region, target: int) -> None:
        self.model, self.region, self.target = model, region, target
        self.n = float(region.sum())

    def __call__(self, x):
        out = self.model(x)[:, self.target]
        return (out * self.region).sum(dim=(-2, -1)) / self.n


def _attribute(method: str, f, model, x, shape: tuple[int, int], opts: ExplainOptions, info: dict):
    """Captum attribution of the region logit ``f`` for input ``x`` (one of the gradient/perturbation methods);
    method details go into ``info``."""
    import torch

    if method == "integrated-gradients":
        from captum.attr import IntegratedGradients

        # Baseline 0 = the mean intensity of a standardised image: "no contrast at all".
        attr = IntegratedGradients(f).attribute(x, baselines=0.0, n_steps=opts.ig_steps, internal_batch_size=4)
        info["ig_steps"] = opts.ig_steps
        return attr[0, 0]
    if method == "occlusion":
        from captum.attr import Occlusion

        side = min(shape)
        win = opts.occlusion_window or int(np.clip(side // 6, 8, 48))
        strd = opts.occlusion_stride or max(1, win // 2)
        with torch.no_grad():
            attr = Occlusion(f).attribute(x, sliding_window_shapes=(1, win, win), strides=(1, strd, strd),
                                          baselines=0.0, perturbations_per_eval=16)
        info.update({"window_px": win, "stride_px": strd})
        return attr[0, 0]
    from captum.attr import LayerAttribution, LayerGradCam

    blocks = getattr(getattr(model, "decoder", None), "blocks", None)
    if blocks is None or len(blocks) == 0:
        raise DataError("Grad-CAM needs an smp decoder with blocks; use integrated-gradients instead")
    layer = blocks[opts.gradcam_block]
    cam = LayerGradCam(f, layer).attribute(x, relu_attributions=True)
    info["layer"] = f"decoder.blocks[{opts.gradcam_block}]"
    return LayerAttribution.interpolate(cam, shape, interpolate_mode="bilinear")[0, 0]


def _window(prep, box: tuple[int, int, int, int], max_side: int, method: str) -> dict:
    """The attribution window on the original grid, and why it is not the whole image (None when it is)."""
    y0, x0, y1, x1 = box
    h, w = prep.image.shape
    f = prep.factor or 1.0
    oh, ow = prep.original_shape
    win = [int(round(y0 / f)), int(round(x0 / f)), min(oh, int(round(y1 / f))), min(ow, int(round(x1 / f)))]
    whole = (y0, x0, y1, x1) == (0, 0, h, w)
    note = None if whole else (
        f"{method} covers the {win[3] - win[1]}x{win[2] - win[0]} px window drawn around the region's centre, not "
        f"the whole {ow}x{oh} px image: on the model's grid the image is {w}x{h} px, above this method's "
        f"{max_side} px limit (CPU time); pick a region elsewhere to move the window, or use gradcam")
    return {"explained_px": win, "window_whole_image": whole, "window_note": note}


def explain(checkpoint, micrograph, method: str = "integrated-gradients", region=None, frame: int = 0,
            options: ExplainOptions | None = None, prediction=None, progress=None) -> Explanation:
    """Importance map for ``region`` of one frame (default: the predicted foreground, from ``prediction`` if given)."""
    import torch

    from temzoo.device import pick_device
    from temzoo.predict import PredictOptions, prepare_input, run_tiled
    from temzoo.preprocess import resize
    from temzoo.tiling import pad_to_stride

    if method not in METHODS:
        raise DataError(f"unknown explanation method {method!r}; use one of {', '.join(METHODS)}")
    opts = options or ExplainOptions()
    t0 = time.perf_counter()
    if method == "fourier":
        bands = fourier_band_importance(checkpoint, micrograph, frame=frame, device=opts.device, progress=progress)
        best = bands.most_important
        imp = np.zeros(micrograph.shape, np.float32) if best is None else resize(
            bands.change_maps[best.name], micrograph.shape, order="bilinear")
        return Explanation("fourier", imp.astype(np.float32), np.ones(micrograph.shape, bool),
                           time.perf_counter() - t0, {"bands": bands.to_dict()})
    device = pick_device(opts.device)
    prep = prepare_input(checkpoint, micrograph, frame)
    default_mask = None
    if region is None:
        if prediction is not None:
            default_mask = prediction.mask > 0
        else:
            maps, _ = run_tiled(checkpoint, prep.image, PredictOptions(device=opts.device), device=device)
            default_mask = resize(maps[0] if maps.shape[0] == 1 else 1 - maps[0], prep.original_shape) >= 0.5
    rmask = _region_on_model_grid(region, prep, default_mask)
    rf = receptive_field(checkpoint)
    stride = checkpoint.spec.stride
    max_side = opts.max_side or MAX_SIDE[method]
    # the whole image when it fits (margin = the image): importance everywhere, not only next to the region
    y0, x0, y1, x1 = _crop_box(rmask, max(rmask.shape), max_side, stride)
    crop = prep.image[y0:y1, x0:x1]
    padded, (ch, cw) = pad_to_stride(crop, stride)
    rcrop = np.zeros(padded.shape, np.float32)
    rcrop[:ch, :cw] = rmask[y0:y1, x0:x1]
    if not rcrop.any():
        raise DataError("the region lies outside the attribution window; pick a smaller region")
    model = _attr_model(checkpoint, device)
    x = torch.from_numpy(np.ascontiguousarray(padded, np.float32))[None, None].to(device)
    r = torch.from_numpy(rcrop).to(device)
    target = 0 if checkpoint.spec.classes == 1 else 1
    f = _RegionLogit(model, r, target)
    info = {"crop_model_px": [y0, x0, y1, x1], "region_model_px": int(rmask.sum()), "target_class": target,
            "receptive_field": rf, **_window(prep, (y0, x0, y1, x1), max_side, method)}
    amap = _attribute(method, f, model, x, tuple(padded.shape), opts, info)
    amap = amap.detach().float().cpu().numpy()[:ch, :cw]
    full = np.zeros(prep.image.shape, np.float32)
    full[y0:y1, x0:x1] = amap
    # Attributions are per model pixel; spread over the original grid they keep their sign and relative size.
    importance = resize(full, prep.original_shape, order="bilinear") if full.shape != prep.original_shape else full
    region_orig = resize(rmask.astype(np.float32), prep.original_shape) >= 0.5 if rmask.shape != prep.original_shape \
        else rmask
    return Explanation(method, importance.astype(np.float32), region_orig, time.perf_counter() - t0, info)


# ------------------------------------------------------------------------------------------------- receptive field
_RF_CACHE: dict[tuple[int, int], dict] = {}


def receptive_field(checkpoint, size: int = 256) -> dict:
    """Empirical receptive field: where the gradient of the centre output pixel w.r.t. the input is non-zero.

    Returns ``extent_px`` (full width of the non-zero gradient), ``radius95_px`` (radius holding 95 % of the gradient
    mass: the effective field, Luo et al. 2016) and both in nm at the model's pixel size (None when uncalibrated).
    """
    import torch

    from temzoo.predict import _version, runtime_model

    key = (id(checkpoint.model), _version(checkpoint.model))
    if key in _RF_CACHE:
        return _RF_CACHE[key]
    model = runtime_model(checkpoint.model, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    stride = checkpoint.spec.stride
    while True:
        size = -(-size // stride) * stride
        x = torch.randn(1, checkpoint.spec.in_channels, size, size, generator=gen).requires_grad_(True)
        with torch.enable_grad():
            out = model(x)
            out[0, 0, size // 2, size // 2].backward()
        g = x.grad[0].abs().sum(0).numpy()
        nz = np.argwhere(g > g.max() * 1e-6)
        lo, hi = nz.min(0), nz.max(0)
        if (lo > 0).all() and (hi < size - 1).all() or size >= 1024:
            break
        size *= 2
    extent = int((hi - lo).max()) + 1
    yy, xx = np.indices(g.shape)
    r = np.hypot(yy - size // 2, xx - size // 2).ravel()
    order = np.argsort(r)
    cum = np.cumsum(g.ravel()[order])
    r95 = float(r[order][np.searchsorted(cum, 0.95 * cum[-1])])
    px_nm = checkpoint.meta.pixel_size_nm
    result = {"extent_px": extent, "radius95_px": r95,
              "extent_nm": extent * px_nm if px_nm else None, "radius95_nm": r95 * px_nm if px_nm else None,
              "analytic_px": checkpoint.meta.receptive_field_px}
    _RF_CACHE[key] = result
    return result


# ----------------------------------------------------------------------------------------------- Fourier-band ablation
@dataclass
class Band:
    name: str
    period_max: float  # nm (or px when uncalibrated); inf for the lowest band
    period_min: float
    power_fraction: float = 0.0  # share of the image's (non-DC) spectral power in this band
    mean_abs_change: float = 0.0  # mean |p_without_band - p| over the image
    mask_change: float = 0.0  # fraction of pixels whose predicted class flips
    foreground_change: float = 0.0  # change in foreground fraction (signed)


@dataclass
class BandImportance:
    bands: list[Band]
    unit: str  # "nm" or "px"
    pixel_size: float  # model grid, in ``unit``
    seconds: float
    change_maps: dict[str, np.ndarray] = field(default_factory=dict)  # model grid, |delta p|
    spectrum_peaks: list[float] = field(default_factory=list)  # periods in ``unit``

    @property
    def most_important(self) -> Band | None:
        return max(self.bands, key=lambda b: b.mean_abs_change) if self.bands else None

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {"unit": self.unit, "pixel_size": self.pixel_size, "seconds": self.seconds,
                "spectrum_peaks": self.spectrum_peaks,
                "bands": [{k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                           for k, v in asdict(b).items()} for b in self.bands]}


DEFAULT_PERIODS_NM = (5.0, 2.0, 1.0, 0.5, 0.25)  # band edges; lattice fringes of metals sit at 0.2-0.25 nm
DEFAULT_PERIODS_PX = (64.0, 32.0, 16.0, 8.0, 4.0)


def default_bands(pixel_size_nm: float | None) -> list[tuple[float, float]]:
    """(period_max, period_min) pairs from coarse contrast down to the Nyquist period (2 px)."""
    edges = DEFAULT_PERIODS_NM if pixel_size_nm else DEFAULT_PERIODS_PX
    nyq = 2 * (pixel_size_nm or 1.0)
    keep = [e for e in edges if e > nyq * 1.05]
    bounds = [float("inf"), *keep, nyq]
    return list(zip(bounds[:-1], bounds[1:]))


def _band_name(pmax: float, pmin: float, unit: str) -> str:
    if not np.isfinite(pmax):
        return f"> {pmin:g} {unit}"
    return f"{pmin:g}-{pmax:g} {unit}"


def fourier_band_importance(checkpoint, micrograph, bands: list[tuple[float, float]] | None = None, frame: int = 0,
                            device: str = "auto", max_side: int = 1024, progress=None) -> BandImportance:
    """Remove one band of spatial frequencies at a time (on the normalised model-grid image) and re-predict.

    The bands are given as periods (``period_max``, ``period_min``) in nm (in px when the model is uncalibrated).
    The image is not re-standardised after removal, so what remains keeps its amplitude. Images larger than
    ``max_side`` are measured on a central crop (the statistic is per pixel; the crop keeps it cheap).
    """
    from temzoo.device import pick_device
    from temzoo.metrics import spectrum_peaks
    from temzoo.predict import PredictOptions, prepare_input, run_tiled

    t0 = time.perf_counter()
    dev = pick_device(device)
    prep = prepare_input(checkpoint, micrograph, frame)
    img = prep.image
    h, w = img.shape
    if h > max_side or w > max_side:
        y0, x0 = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
        img = img[y0:y0 + max_side, x0:x0 + max_side]
    px = prep.model_pixel_size_nm
    unit = "nm" if px else "px"
    step = px or 1.0
    bands = bands or default_bands(px)
    opts = PredictOptions(device=device)
    base, _ = run_tiled(checkpoint, img, opts, device=dev)
    base_p = base[0] if base.shape[0] == 1 else base
    base_cls = (base_p >= 0.5) if base_p.ndim == 2 else base_p.argmax(0)
    spec = np.fft.rfft2(img)
    fy = np.fft.fftfreq(img.shape[0], d=step)[:, None]
    fx = np.fft.rfftfreq(img.shape[1], d=step)[None, :]
    freq = np.hypot(fy, fx)  # cycles per unit
    power = np.abs(spec) ** 2
    power[0, 0] = 0.0
    total = float(power.sum()) or 1.0
    out: list[Band] = []
    maps: dict[str, np.ndarray] = {}
    for i, (pmax, pmin) in enumerate(bands):
        if not pmax > pmin > 0:
            raise DataError(f"band ({pmax}, {pmin}) must be (longer period, shorter period) with both > 0")
        fmin = 0.0 if not np.isfinite(pmax) else 1.0 / pmax
        fmax = 1.0 / pmin
        sel = (freq >= fmin) & (freq < fmax)
        sel[0, 0] = False  # keep the mean
        name = _band_name(pmax, pmin, unit)
        if not sel.any():
            continue
        filtered = np.fft.irfft2(np.where(sel, 0, spec), s=img.shape).astype(np.float32)
        m, _ = run_tiled(checkpoint, filtered, opts, device=dev)
        p = m[0] if m.shape[0] == 1 else m
        cls = (p >= 0.5) if p.ndim == 2 else p.argmax(0)
        diff = np.abs(p - base_p) if p.ndim == 2 else np.abs(p - base_p).sum(0) / 2
        fg = float(np.mean(cls > 0)) - float(np.mean(base_cls > 0))
        out.append(Band(name, float(pmax), float(pmin), float(power[sel].sum() / total), float(diff.mean()),
                        float(np.mean(cls != base_cls)), fg))
        maps[name] = diff.astype(np.float32)
        if progress is not None:
            progress((i + 1) / len(bands), f"band {name}")
    peaks = [p for p in spectrum_peaks(img, step)]
    return BandImportance(out, unit, float(step), time.perf_counter() - t0, maps, peaks)


def receptive_field_vs_lattice(rf: dict, spacing_nm: float | None) -> str:
    """One line comparing the receptive field with a lattice spacing (Sytwu et al.: it should span several)."""
    if rf.get("extent_nm") is None:
        return f"receptive field {rf['extent_px']} px (effective radius {rf['radius95_px']:.0f} px); model uncalibrated"
    line = (f"receptive field {rf['extent_nm']:.3g} nm ({rf['extent_px']} px; 95 % of the gradient within "
            f"{rf['radius95_nm']:.3g} nm of the pixel)")
    if spacing_nm:
        line += f", {rf['extent_nm'] / spacing_nm:.1f} lattice periods of {spacing_nm:.3g} nm"
    return line
