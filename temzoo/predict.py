"""Inference: one micrograph frame in, a :class:`~temzoo.types.Prediction` on the frame's own pixel grid out.

Steps: resample to the checkpoint's pixel size -> normalise exactly as in training -> pad to the net's stride ->
overlapping tiles in batches (optionally x8 dihedral TTA and/or N MC-dropout passes) -> blended merge -> back to the
original grid -> probability, confidence, entropy, spread maps. The caller's arrays and the (possibly shared, cached)
model are never modified: the model is copied once per device into channels-last layout and run in inference mode.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from temzoo.errors import DataError, ModelError

Progress = Callable[[float, str], None]

# A resampled frame larger than this many pixels is refused: it means the pixel sizes are wildly different.
MAX_MODEL_PIXELS = 16384 * 16384
PIXEL_RATIO_WARN = 2.0


@dataclass
class PredictOptions:
    """How to run a model; every field has a sensible default."""

    tta: bool = False  # average over the 8 rotations/flips; per-pixel spread in maps["tta_spread"]
    mc_dropout: int = 0  # number of Monte-Carlo dropout passes (0 = off)
    mc_p: float = 0.2  # dropout rate of the MC hook before the segmentation head
    threshold: float = 0.5
    temperature: float = 1.0  # logits are divided by this (fit with temzoo.confidence.fit_temperature)
    tile_size: int | None = None  # max tile edge in model pixels; None: 1024 on CPU, 2048 on CUDA
    overlap: int = 48  # px overlap between tiles (blended; about 2.5x the 95 % radius of the default net)
    batch_size: int | None = None  # tiles per forward; None: from a pixel budget
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA (the CPU always runs float32 here)
    seed: int | None = 0  # MC-dropout seed (reproducible maps); the global RNG state is restored afterwards


@dataclass
class PreparedInput:
    """A frame as the network sees it: resampled to the model's pixel size and normalised."""

    image: Any  # normalised, on the model grid: a NumPy array, or a tensor on the device it was prepared for
    original_shape: tuple[int, int]
    pixel_size_nm: float | None  # of the original frame
    model_pixel_size_nm: float | None  # of the model grid (None: model uncalibrated, no resampling)
    factor: float
    warnings: list[str]


def prepare_input(checkpoint, micrograph, frame: int = 0, any_task: bool = False, device=None) -> PreparedInput:
    """Resample one frame to the checkpoint's pixel size and normalise it (a new array; the input is untouched).

    ``any_task``: also for a denoising model (its encoder describes images too: temzoo.ood). ``device``: do both on
    that torch device and return the image as a tensor there (the frame crosses to it once, in its own dtype)."""
    from temzoo.preprocess import normalize, resample, scale_factor

    if checkpoint.meta.task != "segmentation" and not any_task:
        raise ModelError(f"model {checkpoint.model_id!r} is a {checkpoint.meta.task} model, not a segmentation model; "
                         "fine-tune it for segmentation first or pick another model")
    try:
        img = micrograph.frame(frame)
    except IndexError as err:
        raise DataError(f"{err}; pick a frame between 0 and {micrograph.n_frames - 1}") from None
    if img.ndim != 2 or min(img.shape) < 2:
        raise DataError(f"expected a 2D image, got shape {img.shape}; pick one image of the file")
    warnings: list[str] = []
    model_nm = checkpoint.meta.pixel_size_nm
    px = micrograph.pixel_size_nm
    if px is not None and (not np.isfinite(px) or px <= 0):
        raise DataError(f"pixel size {px} nm is not a positive number; fix the calibration or leave it unset")
    if px is None and model_nm:
        warnings.append(f"image is uncalibrated: assumed the model's pixel size {model_nm:.4g} nm/px "
                        "(set the pixel size for a size-correct result)")
    shrink = float(checkpoint.meta.input_downsample or 1.0)
    if model_nm is None:
        warnings.append("model has no pixel size in temzoo.json: image used at its own scale" if shrink == 1 else
                        f"model has no pixel size in temzoo.json: image shrunk {shrink:g}x like its training images")
    factor = scale_factor(px, model_nm) if model_nm else 1.0 / shrink
    h, w = img.shape
    if h * w * factor * factor > MAX_MODEL_PIXELS:
        raise DataError(f"image at {px} nm/px would become {int(h * factor)}x{int(w * factor)} px at the model's "
                        f"{model_nm} nm/px; check the calibration or pick a model trained at a closer pixel size")
    if max(round(h * factor), round(w * factor)) < 8:
        raise DataError(f"image at {px} nm/px shrinks below 8 px at the model's {model_nm} nm/px; "
                        "pick a model trained at a closer pixel size")
    if px is not None and model_nm and (factor > PIXEL_RATIO_WARN or factor < 1 / PIXEL_RATIO_WARN):
        warnings.append(f"pixel size {px:.4g} nm differs from the model's {model_nm:.4g} nm by x{px / model_nm:.3g}: "
                        "the image was resampled by that much; results may be off")
    src = img if device is None else _to_device(img, device)
    x = normalize(resample(src, factor, order="bilinear"), checkpoint.meta.norm)
    return PreparedInput(x, (h, w), px, model_nm if model_nm else px, factor, warnings)


def _to_device(img: np.ndarray, device):
    """The frame as a tensor on ``device``; integer and float32 frames cross as they are (a 16-bit frame moves half
    the bytes of its float32 copy), anything else as float32."""
    import torch

    a = np.ascontiguousarray(img)
    if a.dtype not in (np.uint8, np.int16, np.uint16, np.int32, np.float32) or not a.dtype.isnative:
        a = a.astype(np.float32)
    if a.dtype == np.uint16 and torch.device(device).type != "cpu":
        return _uint16_to(a, device)
    return torch.from_numpy(a).to(device)


def _uint16_to(a: np.ndarray, device):
    """A uint16 frame on ``device`` as int32, having crossed as 2 bytes a pixel: torch's uint16 is a dtype with few
    kernels outside the CPU (casts on a GPU are not promised), so its bits travel as int16 and are widened there
    with int16/int32 ops that every backend has."""
    import torch

    return torch.from_numpy(a.view(np.int16)).to(device).to(torch.int32) & 0xFFFF


# -------------------------------------------------------------------------------------------- runtime model per device
_RUNTIME: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _version(model) -> int:
    # Tensor._version grows on every in-place change (an optimizer step): a changed source invalidates the copy.
    return sum(p._version for p in model.parameters())


def runtime_model(model, device):
    """An eval-mode, channels-last copy of ``model`` on ``device``, cached per source model and device.

    The source (possibly a ``st.cache_resource`` object shared between sessions) is never moved or converted.
    """
    import copy

    import torch

    per_model = _RUNTIME.setdefault(model, {})
    key = str(device)
    version = _version(model)
    hit = per_model.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    rt = copy.deepcopy(model).to(device).eval()
    rt = rt.to(memory_format=torch.channels_last)
    for p in rt.parameters():
        p.requires_grad_(False)
    per_model[key] = (version, rt)
    return rt


# ------------------------------------------------------------------------------------------------------ tile forward
def _forward_out(model, x, device, opts: PredictOptions, in_channels: int, output: Callable | None):
    import torch

    from temzoo.confidence import probabilities
    from temzoo.device import autocast

    x = x.to(device, non_blocking=True)
    if in_channels > 1 and x.shape[1] == 1:
        x = x.expand(-1, in_channels, -1, -1)
    x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, opts.amp):
        logits = model(x)
    return probabilities(logits, opts.temperature) if output is None else output(logits)


def _tile_samples(model, x, device, opts: PredictOptions, in_channels: int = 1, output: Callable | None = None) -> list:
    """The K output samples ``(B, C, h, w)`` (probabilities unless ``output`` says otherwise) for one tile batch."""
    from temzoo.confidence import dihedral, dihedral_inverse, mc_dropout

    transforms = _transforms(opts)
    passes = max(1, opts.mc_dropout)
    out = []
    for _ in range(passes):
        for k, flip in transforms:
            xt = dihedral(x, k, flip) if (k or flip) else x
            if opts.mc_dropout > 0:
                with mc_dropout(model, opts.mc_p):
                    p = _forward_out(model, xt, device, opts, in_channels, output)
            else:
                p = _forward_out(model, xt, device, opts, in_channels, output)
            out.append(dihedral_inverse(p, k, flip) if (k or flip) else p)
    return out


def _transforms(opts: PredictOptions):
    from temzoo.confidence import DIHEDRAL

    return DIHEDRAL if opts.tta else ((0, False),)


def run_tiled(checkpoint, image, opts: PredictOptions, progress: Progress | None = None,
              device=None) -> tuple[np.ndarray, dict]:
    """Run the net over a normalised 2D image (NumPy) on the model grid; NumPy maps back (see :func:`tiled_maps`)."""
    import torch

    from temzoo.device import pick_device

    device = device or pick_device(opts.device)
    x = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(image, np.float32))
    maps, info = tiled_maps(checkpoint, x.to(device), opts, progress, device)
    return maps.cpu().numpy(), info


def tiled_maps(checkpoint, image, opts: PredictOptions, progress: Progress | None, device) -> tuple[Any, dict]:
    """Run the checkpoint's net (its cached runtime copy) over a normalised 2D image tensor on ``device``.

    Returns ``(maps, info)`` as :func:`model_maps` does, ``info`` with the device and the forward time added.
    """
    import torch

    model = runtime_model(checkpoint.model, device)
    t0 = time.perf_counter()
    maps, info = model_maps(model, image, checkpoint.spec.stride, opts, device, checkpoint.spec.in_channels,
                            progress=progress)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # so that forward_seconds is the work, not the launches
    info.update({"device": str(device), "forward_seconds": time.perf_counter() - t0})
    return maps, info


def model_maps(model, image, stride: int, opts: PredictOptions, device, in_channels: int = 1,
               output: Callable | None = None, progress: Progress | None = None) -> tuple[Any, dict]:
    """The one "model over tiles" of temzoo: a live ``model`` (in eval mode, on ``device``) over a normalised 2D
    image tensor on ``device``: stride padding, overlapping tiles, blended merge, all on that device (no wait on it).

    Used by :func:`tiled_maps` (predict, evaluate) and by training's validation, so both see the same maps.
    ``output`` turns a tile batch's raw outputs into what is blended: class probabilities with ``opts.temperature``
    by default (a denoiser passes its own, e.g. the outputs as they are). Returns ``(maps, info)``, maps a float32
    tensor of shape ``(C + 2, H, W)`` when several samples are drawn (mean, then spread, then mean per-sample
    entropy) or ``(C, H, W)`` otherwise; ``info`` the tiling (tiles, tile_shape, batch_size, samples).
    """
    import torch

    from temzoo.confidence import summarize_samples
    from temzoo.tiling import BlendMerger, TileGrid, pad_to_stride

    padded, (h, w) = pad_to_stride(image.float(), stride)
    tile = opts.tile_size or (2048 if device.type == "cuda" else 1024)
    grid = TileGrid.for_image(tuple(padded.shape), tile, opts.overlap, stride)
    # CPU: two ~800 px tiles per forward measured faster than one (bench/bench_predict.py) while activations,
    # which dominate memory, stay below 2 GB peak RSS for a 4096^2 image.
    budget = (4096 * 4096) if device.type == "cuda" else (1536 * 1024)
    batch = opts.batch_size or max(1, budget // (grid.tile_h * grid.tile_w))
    n_samples = len(_transforms(opts)) * max(1, opts.mc_dropout)
    merger = None
    boxes = grid.boxes
    th, tw = grid.tile_h, grid.tile_w
    cuda_rng = [device.index or 0] if device.type == "cuda" else []
    rng_ctx = torch.random.fork_rng(devices=cuda_rng) if opts.mc_dropout > 0 else contextlib.nullcontext()
    with torch.inference_mode(), rng_ctx:
        if opts.mc_dropout > 0 and opts.seed is not None:
            torch.manual_seed(opts.seed)
        for i in range(0, len(boxes), batch):
            chunk = boxes[i:i + batch]
            x = torch.stack([padded[y:y + th, x0:x0 + tw] for y, x0 in chunk])[:, None]
            samples = _tile_samples(model, x, device, opts, in_channels, output)
            if n_samples > 1:
                st = summarize_samples(samples)
                out = torch.cat([st.mean, st.spread[:, None], st.mean_entropy[:, None]], dim=1)
            else:
                out = samples[0]
            if merger is None:  # as many channels as the net's outputs give
                merger = BlendMerger(grid, out.shape[1], device)
            for (y, x0), tile_out in zip(chunk, out):
                merger.add(y, x0, tile_out)
            if progress is not None:
                progress(min(1.0, (i + len(chunk)) / len(boxes)), f"tile {i + len(chunk)}/{len(boxes)}")
        maps = merger.result()[:, :h, :w]
    info = {"tiles": len(boxes), "tile_shape": [th, tw], "batch_size": batch, "samples": n_samples}
    return maps, info


def raw_output(out):
    """``output`` for :func:`model_maps` of a net whose outputs are images (a denoiser), not logits: as they are."""
    return out.float()


def class_probabilities(maps, classes: int):
    """The probability map(s) of merged ``maps``: ``(H, W)`` foreground for one class, else ``(C, H, W)``; blending
    and bf16 leave them a hair off, so they are clamped to [0, 1] and several classes renormalised to sum 1. What
    predict/evaluate score, and training's validation too."""
    probs = maps[:classes].clamp(0.0, 1.0)
    if classes > 1:
        probs = probs / probs.sum(0, keepdim=True).clamp_min(1e-6)
    return probs[0] if classes == 1 else probs


# ----------------------------------------------------------------------------------------------------------- predict
def predict(checkpoint, micrograph, options: PredictOptions | None = None, progress: Progress | None = None,
            frame: int = 0):
    """Segment one frame of ``micrograph`` with ``checkpoint``; the result lies on the frame's own pixel grid.

    Everything from normalisation to the mask runs as torch ops on the model's device; only the finished maps
    come back (see :func:`_to_host`)."""
    from temzoo.device import pick_device
    from temzoo.preprocess import resize
    from temzoo.types import Prediction

    opts = options or PredictOptions()
    if opts.mc_dropout < 0 or opts.temperature <= 0 or not 0 < opts.threshold < 1:
        raise DataError("mc_dropout must be >= 0, temperature > 0 and threshold between 0 and 1")
    t0 = time.perf_counter()
    device = pick_device(opts.device)
    prep = prepare_input(checkpoint, micrograph, frame, device=device)
    maps, info = tiled_maps(checkpoint, prep.image, opts, progress, device)
    # Back to the original grid (bilinear on probabilities, then threshold: smoother edges than nearest on masks).
    if tuple(maps.shape[-2:]) != prep.original_shape:
        maps = resize(maps, prep.original_shape, order="bilinear")
    mask, probability, confidence, extra = _host_maps(_finish_maps(maps, checkpoint.spec.classes, opts))
    info.update({"scale_factor": prep.factor, "model_grid_shape": list(prep.image.shape), "tta": opts.tta,
                 "mc_dropout": opts.mc_dropout, "temperature": opts.temperature, "frame": frame})
    return Prediction(
        mask=mask,
        probability=probability,
        confidence=confidence,
        pixel_size_nm=prep.pixel_size_nm,
        resampled_to_nm=prep.model_pixel_size_nm,
        model_id=checkpoint.model_id,
        seconds=time.perf_counter() - t0,
        maps=extra,
        warnings=list(prep.warnings),
        info=info,
    )


def _finish_maps(maps, classes: int, opts: PredictOptions) -> dict:
    """Mask, probability, confidence and the named extra maps from merged ``maps`` (tensors, on their device)."""
    import torch

    from temzoo.confidence import entropy, hard_mask, max_probability

    probability = class_probabilities(maps, classes)
    extra = {"entropy": entropy(probability)}
    if maps.shape[0] > classes:
        spread, mean_entropy = maps[classes], maps[classes + 1]
        mi = torch.clamp_min(extra["entropy"] - mean_entropy, 0)
        if opts.mc_dropout > 0:
            extra["mc_spread"], extra["mc_mutual_information"] = spread, mi
        if opts.tta:
            extra["tta_spread" if opts.mc_dropout == 0 else "tta_mc_spread"] = spread
            if opts.mc_dropout == 0:
                extra["tta_mutual_information"] = mi
    return {"mask": hard_mask(probability, opts.threshold), "probability": probability,
            "confidence": max_probability(probability), "maps": extra}


def _host_maps(out: dict, compact: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                   dict[str, np.ndarray]]:
    """The finished maps as NumPy arrays (mask uint8, the rest float32).

    On the CPU they already are (zero-copy). From a GPU (``compact``, default: the maps are not on the CPU) the float
    maps cross as one float16 tensor (half the bytes; float16 keeps probabilities to 2.4e-4, finer than the bf16
    forward that made them) and the uint8 mask as is; the mask was thresholded on the device at full precision.
    """
    import torch

    prob = out["probability"]
    planes = [*(prob if prob.ndim == 3 else [prob]), out["confidence"], *out["maps"].values()]
    if compact is None:
        compact = prob.device.type != "cpu"
    if not compact:
        host = [p.contiguous().numpy() for p in planes]
        mask = out["mask"].numpy()
    else:
        # Cast plane by plane, then stack: the device holds one float16 copy, not a float32 one as well.
        stacked = torch.stack([p.to(torch.float16) for p in planes]).cpu().float()
        host = list(stacked.numpy())
        mask = out["mask"].cpu().numpy()
    n = prob.shape[0] if prob.ndim == 3 else 1
    probability = np.stack(host[:n]) if prob.ndim == 3 else host[0]
    return mask, np.ascontiguousarray(probability), host[n], dict(zip(out["maps"], host[n + 1:]))


def predict_stack(checkpoint, micrograph, options: PredictOptions | None = None,
                  progress: Progress | None = None) -> list:
    """One :class:`Prediction` per frame of a stack (a single image gives a list of one)."""
    n = micrograph.n_frames
    out = []
    for i in range(n):
        sub = None
        if progress is not None:
            def sub(f, text="", i=i):  # noqa: ANN001
                progress((i + f) / n, f"frame {i + 1}/{n}: {text}")
        out.append(predict(checkpoint, micrograph, options, sub, frame=i))
    return out


def ensemble_predict(checkpoints: Sequence, micrograph, options=None, progress=None, frame: int = 0):
    """Run several checkpoints on one frame and combine them (mean probability, spread, mutual information).

    Each member is resampled to its own pixel size and mapped back, so members trained at different scales combine.
    """
    from temzoo.confidence import combine_members, entropy, hard_mask, max_probability

    if not checkpoints:
        raise ModelError("an ensemble needs at least one model; pick two or more on the Zoo page")
    options = options or PredictOptions()
    t0 = time.perf_counter()
    members = []
    for i, ck in enumerate(checkpoints):
        sub = None
        if progress is not None:
            def sub(f, text="", i=i):  # noqa: ANN001 - progress of member i within the whole ensemble
                progress((i + f) / len(checkpoints), f"model {i + 1}/{len(checkpoints)}: {text}")
        members.append(predict(ck, micrograph, options, progress=sub, frame=frame))
    classes = {m.probability.ndim for m in members}
    if len(classes) != 1 or len({m.probability.shape for m in members}) != 1:
        raise ModelError("ensemble members disagree on the number of classes; pick models for the same task")
    comb = combine_members([m.probability for m in members])
    prob = comb["probability"]
    first = members[0]
    maps = {"entropy": entropy(prob), "ensemble_spread": comb["spread"],
            "ensemble_mutual_information": comb["mutual_information"].astype(np.float32)}
    warnings = sorted({w for m in members for w in m.warnings})
    return type(first)(
        mask=hard_mask(prob, options.threshold), probability=prob, confidence=max_probability(prob),
        pixel_size_nm=first.pixel_size_nm, resampled_to_nm=first.resampled_to_nm,
        model_id=" + ".join(m.model_id for m in members), seconds=time.perf_counter() - t0, maps=maps,
        warnings=warnings, info={"ensemble": [m.model_id for m in members],
                                 "members": [m.info for m in members]},
    )


def tiles_needed(shape: tuple[int, int], tile: int, overlap: int, stride: int) -> int:
    """How many tiles an image of ``shape`` (model grid) takes; for progress estimates and the docs."""
    from temzoo.tiling import TileGrid, padded_size

    return len(TileGrid.for_image((padded_size(shape[0], stride), padded_size(shape[1], stride)), tile, overlap,
                                  stride))


__all__ = ["PredictOptions", "PreparedInput", "class_probabilities", "model_maps", "predict", "predict_stack",
           "prepare_input", "raw_output", "run_tiled", "runtime_model", "tiled_maps", "tiles_needed"]
