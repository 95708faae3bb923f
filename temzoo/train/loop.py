"""The training loop shared by ``finetune``, ``pretrain-denoise``, background jobs and the zoo recipes.

One call, :func:`train`, does: read + check the set -> choose the working pixel size -> split by image -> build the
network from the base (reinitialising the head when the task or class count differs) -> apply the strategy ->
AdamW with a cosine schedule over the budget (epochs and/or minutes), bf16 autocast + channels-last on CUDA ->
validate every epoch (pixel F1/IoU at 0.5) -> keep the best weights, stop early -> write a zoo-format folder.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from temzoo.device import autocast, cpu_bf16_native
from temzoo.errors import JobError, TemzooError
from temzoo.metrics import PixelCounts
from temzoo.preprocess import Normalization
from temzoo.train import data as D
from temzoo.train.augment import (augment_batch, block_mask, masked_loss, poisson_noise, random_dihedral,
                                  random_doses)
from temzoo.train.config import BASE_KEPT_NOTE, TrainConfig
from temzoo.train.state import atomic_dir, atomic_write_text, find_state, load_state, save_state
from temzoo.train.oom import is_oom, smaller_batch
from temzoo.train.strategies import Strategy, trainable_parameters

logger = logging.getLogger("temzoo.train")
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"


@dataclass
class Setup:
    """Everything :func:`train` derives from the config before the first step (also useful for tests/benchmarks)."""

    model: torch.nn.Module
    spec: Any
    strategy: Strategy
    train: list[D.Sample]
    val: list[D.Sample]
    split: str
    raw: D.RawSet
    target_pixel_size_nm: float | None
    norm: Normalization
    tile: int
    class_names: list[str]
    base_meta: Any = None
    base_id: str = "scratch"
    head_reinitialised: str | None = None
    head_matched: bool = False  # the binary head came from the base's best-matching class (temzoo.train.headmatch)
    notes: list[str] = field(default_factory=list)
    downsample: float = 1.0  # shrink factor used when there is no target pixel size (recorded as input_downsample)


# --------------------------------------------------------------------------------------------------- setup
def _load_base(ref: str):
    if ref in ("", "scratch", None):
        return None
    from temzoo.zoo import load_model

    return load_model(ref)


def effective_downsample(config: TrainConfig, base_meta) -> float:
    """``config.downsample``, or when unset the base's recorded ``input_downsample`` (a base that learnt at half
    resolution is fine-tuned at half resolution, and so is its result scored and used), else 1."""
    if config.downsample is not None:
        return float(config.downsample)
    if base_meta is not None and _uses_base(config):
        return float(getattr(base_meta, "input_downsample", 1.0) or 1.0)
    return 1.0


def _uses_base(config: TrainConfig) -> bool:
    """The strategy starts from the base's weights (not only its architecture)."""
    from temzoo.train.strategies import get_strategy

    return get_strategy(config.strategy).uses_base_weights


def _choose_pixel_size(config: TrainConfig, raw: D.RawSet, base_meta, notes: list[str],
                       downsample: float = 1.0) -> float | None:
    """The pixel size the model will work at (see TrainConfig.target_pixel_size_nm)."""
    if config.target_pixel_size_nm:
        return float(config.target_pixel_size_nm)
    data_px = [p for p in raw.pixel_sizes if p]
    base_px = getattr(base_meta, "pixel_size_nm", None) if _uses_base(config) else None
    if base_px and data_px and raw.calibrated:
        ratio = float(np.median(data_px)) / base_px
        if 0.25 <= ratio <= 4:
            return float(base_px)
        # Another imaging regime altogether (e.g. an HRTEM base at 0.05 nm/px for bright-field images at 1 nm/px):
        # resampling by 20x would make huge, blurred images; the base's features are reused at the data's scale.
        notes.append(f"images are at {np.median(data_px):g} nm/px, the base at {base_px:g} nm/px ({ratio:.3g}x): "
                     "too far apart to resample; training at the images' own scale")
    if data_px and raw.calibrated:
        return float(np.median(data_px)) * downsample
    if base_px:
        notes.append("the images carry no pixel size: trained at their own scale and saved without a pixel size; "
                     "give --pixel-size-nm so the model knows its scale")
    elif downsample != 1:
        notes.append(f"the images carry no pixel size: shrunk {downsample:g}x for training; the model records "
                     "it and shrinks new images alike (give --pixel-size-nm to calibrate instead)")
    return None


def build_setup(config: TrainConfig, log: Callable[[str], None] = logger.info) -> Setup:
    """Read data, pick the pixel size, split, build the model and strategy (no training)."""
    notes: list[str] = []
    ck = _load_base(config.base)
    base_meta = ck.meta if ck is not None else None
    spec = _network(config, ck)
    seg = config.task == "segmentation"
    raw = D.read_set(config.images, config.masks, config.annotations, pixel_size_nm=config.pixel_size_nm,
                     labelled=seg)
    notes += raw.warnings
    downsample = effective_downsample(config, base_meta)
    target = _choose_pixel_size(config, raw, base_meta, notes, downsample)
    norm = base_meta.norm if base_meta is not None else Normalization()
    samples = D.prepare(raw, target, norm, downsample=downsample)
    if config.validation == "regions" and not config.val_names and config.val_fraction > 0:
        train, val, split = D.split_by_region(samples, config.val_fraction, config.seed)
        if not val:  # every image too small for a band: whole images validate rather than no selection at all
            train, val, split = D.split_by_image(samples, config.val_fraction, config.seed)
            split = f"images too small for validation bands, so whole images validate: {split}"
    elif config.validation == "none" and not config.val_names:
        train, val, split = list(samples), [], ("no validation (validation none): every labelled pixel trains for the "
                                                "whole schedule; the epoch with the lowest training loss is kept")
    else:
        train, val, split = D.split_by_image(samples, config.val_fraction, config.seed, config.val_names)

    if seg:
        class_names = list(config.class_names or raw.class_names)
        out_classes = 1 if len(class_names) <= 2 else len(class_names)
    else:
        class_names = ["intensity"]
        out_classes = 1
    new_spec = replace(spec, classes=out_classes)
    torch.manual_seed(config.seed)
    model = new_spec.build()
    pretrained: set[str] = set()
    head_note, head_matched = None, False
    if ck is not None and _uses_base(config):
        pretrained, head_note, head_matched = _init_from_base(config, ck, spec, out_classes, model, train, notes)
        if head_note:
            log(head_note)
            notes.append(head_note)
    elif ck is not None:
        notes.append(f"strategy scratch: the architecture of {config.base} with random weights")

    strat = Strategy(config.strategy, model, pretrained=pretrained, batch_size=config.batch_size,
                     freeze_bn_below=config.freeze_bn_below, l2_lambda=config.l2_lambda,
                     l2sp_alpha=config.l2sp_alpha, l2sp_beta=config.l2sp_beta,
                     unfreeze_every=config.unfreeze_every)
    tile = D.effective_tile(train, config.tile_size, new_spec.stride)
    return Setup(model=model, spec=new_spec, strategy=strat, train=train, val=val, split=split, raw=raw,
                 target_pixel_size_nm=target, norm=norm, tile=tile, class_names=class_names, base_meta=base_meta,
                 base_id=str(config.base or "scratch"), head_reinitialised=head_note, head_matched=head_matched,
                 notes=notes,
                 downsample=downsample)


def _network(config: TrainConfig, ck) -> Any:
    """The network spec: the base's own, else the size asked for (or the device's default: temzoo.zoo.meta)."""
    from temzoo.zoo.meta import ModelSpec, size_for_device

    if ck is None:
        return ModelSpec.preset(size_for_device(config.size, config.device))
    if config.size is not None and ck.spec.size != config.size:
        raise TemzooError(f"size {config.size} does not apply: base {config.base} brings its own network "
                          f"({ck.spec.size or ck.spec.encoder_name}); leave the size unset or start from scratch")
    return ck.spec


def _init_from_base(config: TrainConfig, ck, spec, out_classes: int, model, train: list[D.Sample],
                    notes: list[str]) -> tuple[set[str], str | None, bool]:
    """Copy the base's weights into ``model``; returns the names of pretrained parameters, the head note and
    whether the head came from one of the base's classes.

    A head whose shape or task differs is reinitialised, except that a binary task from a multi-class segmentation
    base starts from the base's best-matching class (:mod:`temzoo.train.headmatch`, on the training images only).
    """
    base_task = getattr(ck.meta, "task", "segmentation")
    reinit_head = spec.classes != out_classes or base_task != config.task
    head_note, matched = None, False
    state = ck.model.state_dict()
    if reinit_head:
        why = (f"the base is a {base_task} model" if base_task != config.task
               else f"the base has {spec.classes} output channel(s), this set needs {out_classes}")
        head_note = f"segmentation head reinitialised ({why})"
    own = model.state_dict()
    # A base may be pretrained only in part (a natural-image encoder with a fresh decoder: temzoo.zoo.timm_base);
    # the rest starts from this run's own seeded initialisation and counts as new for the strategy.
    parts = tuple((getattr(ck.meta, "provenance", None) or {}).get("pretrained_parts") or ())
    load = {k: v for k, v in state.items()
            if not (reinit_head and k.startswith("segmentation_head.")) and k in own and own[k].shape == v.shape
            and (not parts or k.split(".")[0] in parts)}
    if reinit_head and base_task == config.task == "segmentation" and out_classes == 1 and spec.classes > 1:
        match = _match_base_class(config, ck, spec, train)
        if match is not None:
            from temzoo.train.headmatch import binary_head_state

            load.update(binary_head_state(state, match.index))
            notes.append(match.note())
            head_note = f"segmentation head from the base's class '{match.name}' (the base has {spec.classes} classes)"
            matched = True
    init = {k: v.detach().clone() for k, v in own.items() if v.dim() > 1} if config.base_rescale else {}
    model.load_state_dict(load, strict=False)
    param_names = {n for n, _ in model.named_parameters()}
    pretrained = {k for k in load if k in param_names}
    if config.base_rescale:
        from temzoo.train.rescale import rescale_to_init

        done = rescale_to_init(model, init, pretrained, spec.in_channels)
        if done.kernels:
            notes.append(done.note())
    return pretrained, head_note, matched


def _match_base_class(config: TrainConfig, ck, spec, train: list[D.Sample]):
    """Score the base's classes on the labelled training samples (CPU or the run's device; no gradients)."""
    from temzoo.train.headmatch import match_class

    labelled = [s for s in train if s.mask is not None]
    if not labelled:
        return None
    names = list(getattr(ck.meta, "class_names", None) or [])
    return match_class(base_class_maps(config, ck, spec, labelled), [s.mask for s in labelled], names)


def base_class_maps(config: TrainConfig, ck, spec, samples: list[D.Sample]) -> list[np.ndarray]:
    """The base's ``(C, H, W)`` class probabilities on prepared ``samples``, run as validation runs it (on the run's
    device, no gradients): what the class-matched head is chosen from, and ``bench_transfer --zero-shot`` scores."""
    from temzoo.device import pick_device
    from temzoo.predict import model_maps

    device = pick_device(config.device)
    model = ck.model.to(device).eval()
    opts = val_options(config)
    try:
        with torch.no_grad():
            return [model_maps(model, torch.from_numpy(s.image).to(device), spec.stride, opts, device,
                               spec.in_channels)[0].cpu().numpy() for s in samples]
    finally:
        ck.model.to("cpu")


def _base_is_a_candidate(setup: Setup, config: TrainConfig) -> bool:
    """A segmentation base kept whole (same classes, head not reinitialised, or a head taken from one of its
    classes) can be scored before training."""
    base_task = getattr(setup.base_meta, "task", None)
    return (config.task == "segmentation" and base_task == "segmentation" and _uses_base(config)
            and (not setup.head_reinitialised or setup.head_matched) and bool(setup.val))


# ------------------------------------------------------------------------------------------- loss/metrics
def make_loss(config: TrainConfig, n_out: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss on logits: BCE + Dice, focal (smp.losses), or MSE/L1 for denoising."""
    import segmentation_models_pytorch as smp
    import torch.nn.functional as F

    if config.task == "denoising":
        return F.l1_loss if config.loss == "l1" else F.mse_loss
    mode = "binary" if n_out == 1 else "multiclass"
    if config.loss == "focal":
        focal = smp.losses.FocalLoss(mode)
        return lambda logits, y: focal(logits, y if n_out == 1 else y[:, 0].long())
    dice = smp.losses.DiceLoss(mode, from_logits=True)
    if n_out == 1:
        bce = smp.losses.SoftBCEWithLogitsLoss()
    else:
        bce = torch.nn.CrossEntropyLoss()

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        target = y.float() if n_out == 1 else y[:, 0].long()
        if config.loss == "bce":
            return bce(logits, target)
        if config.loss == "dice":
            return dice(logits, target)
        return bce(logits, target) + dice(logits, target)

    return loss


def _forward(model, x: torch.Tensor, device: torch.device, amp: bool, in_channels: int,
             channels_last: bool = True) -> torch.Tensor:
    """A training step's forward: bf16 autocast on CUDA and on native-bf16 CPUs (temzoo.device.autocast)."""
    if in_channels > 1 and x.shape[1] == 1:
        x = x.expand(-1, in_channels, -1, -1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, amp, cpu=True):
        return model(x).float()


def val_options(config: TrainConfig):
    """How validation runs the net: as ``evaluate`` does (temzoo.predict defaults: tiles, overlap, blending,
    float32 on the CPU), with the run's ``amp`` choice on CUDA."""
    from temzoo.predict import PredictOptions

    return PredictOptions(amp=config.amp)


@torch.no_grad()
def evaluate_samples(model, samples: list[D.Sample], setup_spec, config: TrainConfig, device: torch.device,
                     loss_fn) -> dict[str, float | None]:
    """Validation: loss and pooled pixel F1/IoU (segmentation) or loss/PSNR on fixed-dose noisy copies (denoising;
    with corruption ``mask``, on fixed hidden blocks, scored where hidden).

    The net runs over each image as in ``evaluate`` (temzoo.predict.model_maps) and pixels are counted by
    temzoo.metrics.confusion_counts, so validation F1 is evaluate's F1. Everything stays on ``device`` until the few
    summed numbers at the end: no wait on the GPU per image."""
    if not samples:
        return {"val_loss": None, "val_f1": None, "val_iou": None}
    was_training = model.training
    model.eval()
    try:
        run = _validate_denoising if config.task == "denoising" else _validate_segmentation
        return run(model, samples, setup_spec, config, device, loss_fn)
    finally:
        if was_training:
            model.train()


def _validate_segmentation(model, samples: list[D.Sample], spec, config: TrainConfig, device: torch.device,
                           loss_fn) -> dict[str, float | None]:
    from temzoo.metrics import confusion_counts
    from temzoo.predict import class_probabilities, model_maps

    opts = val_options(config)
    losses, weights = [], []
    counts = torch.zeros(4, dtype=torch.long, device=device)  # tp, fp, fn, tn
    for s in samples:
        maps, _ = model_maps(model, torch.from_numpy(s.image).to(device), spec.stride, opts, device, spec.in_channels)
        prob = class_probabilities(maps, maps.shape[0])
        y = torch.from_numpy(s.mask).to(device).long()
        losses.append(loss_fn(_as_logits(prob)[None], y[None, None]))
        counts += confusion_counts(prob, y, opts.threshold)
        weights.append(s.image.size)
    scores = PixelCounts.of(counts).scores()
    return {"val_loss": _mean_loss(losses, weights), "val_f1": scores["f1"], "val_iou": scores["iou"]}


def _as_logits(prob: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Logits whose sigmoid/softmax gives back ``prob`` (``(H, W)`` foreground or ``(C, H, W)``), so the loss
    scores the blended maps evaluate sees: ``logit(p)`` for one class, ``log(p)`` for several (softmax(log p) = p)."""
    if prob.ndim == 2:
        p = prob.clamp(eps, 1 - eps)[None]
        return torch.log(p) - torch.log1p(-p)
    return torch.log(prob.clamp_min(eps))


def _validate_denoising(model, samples: list[D.Sample], spec, config: TrainConfig, device: torch.device,
                        loss_fn) -> dict[str, float | None]:
    from temzoo.predict import model_maps, raw_output

    opts = val_options(config)
    losses, weights = [], []
    se = torch.zeros((), dtype=torch.float64, device=device)
    n_px = 0
    g = torch.Generator().manual_seed(12345)  # fixed noise/blocks: validation scores comparable across epochs
    for s in samples:
        host = torch.from_numpy(s.image)
        clean = host.to(device)
        hidden = _corrupt_mask(host[None, None], config, g)
        if hidden is None:
            dose = random_doses(1, config.dose_range, g)
            noisy = poisson_noise(host[None, None], dose, g)[0, 0].to(device)
        else:  # masked reconstruction: scored on the hidden pixels only
            hidden = hidden.to(device)
            noisy = clean * (1 - hidden[0, 0])
        maps, _ = model_maps(model, noisy, spec.stride, opts, device, spec.in_channels, output=raw_output)
        pred = maps[:1][None]
        if hidden is None:
            losses.append(loss_fn(pred, clean[None, None]))
            se += ((pred - clean) ** 2).sum()
            n_px += clean.numel()
        else:
            losses.append(masked_loss(loss_fn, pred, clean[None, None], hidden))
            se += (((pred - clean) * hidden) ** 2).sum()
            n_px += int(hidden.sum())
        weights.append(s.image.size)
    mse = float(se) / max(1, n_px)
    # Clean images are standardised (variance 1), so PSNR is taken against a peak-to-peak of ~ 2*3 sd.
    return {"val_loss": _mean_loss(losses, weights), "val_f1": None, "val_iou": None,
            "val_psnr": float(10 * math.log10(36.0 / max(mse, 1e-12)))}


def _mean_loss(losses: list[torch.Tensor], weights: list[int]) -> float:
    """Pixel-weighted mean of the per-image losses (one copy off the device)."""
    return float(np.average(torch.stack(losses).float().cpu().numpy(), weights=weights))


# ------------------------------------------------------------------------------------------------ the loop
def _lr_at(config: TrainConfig, progress: float) -> float:
    """Linear warm-up then cosine decay to ``lr * min_lr_fraction``, driven by the budget fraction used."""
    p = min(max(progress, 0.0), 1.0)
    lo = config.lr * config.min_lr_fraction
    if config.warmup_fraction > 0 and p < config.warmup_fraction:
        return lo + (config.lr - lo) * p / config.warmup_fraction
    q = (p - config.warmup_fraction) / max(1e-9, 1 - config.warmup_fraction)
    return lo + 0.5 * (config.lr - lo) * (1 + math.cos(math.pi * q))


def _rewrite_metrics(path: Path, keep_upto_epoch: int) -> None:
    """On resume drop lines written after the last saved state (they will be recomputed)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("epoch", 0) <= keep_upto_epoch:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    atomic_write_text(path, "".join(x + "\n" for x in keep))


def _is_better(score: float | None, best: float | None) -> bool:
    return score is not None and (best is None or score > best + 1e-6)


def cpu_threads(requested: int | None) -> int:
    """Threads for CPU training: ``requested``, else the idle cores (at least 1, at most torch's default)."""
    import os

    if requested:
        return max(1, int(requested))
    n = torch.get_num_threads()
    try:
        idle = (os.cpu_count() or n) - os.getloadavg()[0]
    except OSError:
        return n
    return max(1, min(n, int(round(idle))))


# ------------------------------------------------------------------------------------- state, budget, batches
@dataclass
class TrainState:
    """Where a run stands; everything but ``lr`` is saved in ``last/`` and restored on resume."""

    epoch: int = 0
    step: int = 0
    offset_s: float = 0.0  # seconds spent before a resume
    best_score: float | None = None
    best_epoch: int = 0
    best_record: dict | None = None
    since_best: int = 0
    batch_size: int = 1
    lr: float = 0.0

    def resume_info(self, seconds: float) -> dict[str, Any]:
        """The JSON saved beside the weights in ``last/`` (key names kept from the first format)."""
        return {"epoch": self.epoch, "step": self.step, "seconds": seconds, "best_score": self.best_score,
                "best_epoch": self.best_epoch, "best_record": self.best_record, "since_best": self.since_best,
                "batch_size": self.batch_size}

    @classmethod
    def from_resume_info(cls, info: dict[str, Any], batch_size: int) -> TrainState:
        return cls(epoch=int(info["epoch"]), step=int(info["step"]), offset_s=float(info["seconds"]),
                   best_score=info.get("best_score"), best_epoch=int(info.get("best_epoch", 0)),
                   best_record=info.get("best_record"), since_best=int(info.get("since_best", 0)),
                   batch_size=int(info.get("batch_size", batch_size)))


@dataclass
class Budget:
    """Epochs and/or seconds; ``progress`` (0..1, the larger of the two fractions) drives the schedule."""

    epochs: int | None
    seconds: float | None
    steps_per_epoch: int
    clock: Callable[[], float]
    t_start: float
    offset_s: float = 0.0
    reserve_s: float = 0.0  # measured cost of validation + saving, kept free at the end of a time budget

    def elapsed(self) -> float:
        return self.offset_s + self.clock() - self.t_start

    def progress(self, step: int) -> float:
        p = 0.0
        if self.epochs:
            p = max(p, step / (self.epochs * self.steps_per_epoch))
        if self.seconds:
            p = max(p, self.elapsed() / self.seconds)
        return p

    def time_up(self) -> bool:
        return bool(self.seconds) and self.elapsed() + self.reserve_s >= self.seconds

    def measured_end_of_epoch(self, seconds: float) -> None:
        """Remember what validation + saving cost, so the last epoch leaves room for them."""
        self.reserve_s = max(self.reserve_s * 0.5, seconds)


class TileBatches:
    """The batch source: random training tiles as tensors on the device, reseeded per epoch (a resumed run draws
    exactly the tiles the uninterrupted one would have). Replace it to feed batches another way.

    With a :class:`~temzoo.train.data.DeviceTileSampler` the images live on the device and tiles are cut (cropped,
    zoomed, rotated/flipped) there; with a :class:`~temzoo.train.data.TileSampler` they are cut on the CPU and copied.
    """

    def __init__(self, sampler: D.TileSampler, seed: int, device: torch.device) -> None:
        self.sampler, self.seed, self.device = sampler, seed, device

    @property
    def dihedral_done(self) -> bool:
        """The tiles arrive already in one of the 8 dihedral orientations (the augmentation skips that part)."""
        return self.sampler.dihedral_in_crop

    def start_epoch(self, epoch: int) -> None:
        self.sampler.rng = np.random.default_rng([self.seed, epoch])

    def next(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        xb, yb = self.sampler.sample(batch_size)
        if isinstance(xb, torch.Tensor):
            return xb, yb
        x = torch.from_numpy(xb)[:, None].to(self.device, non_blocking=True)
        y = None if yb is None else torch.from_numpy(yb.astype(np.int64))[:, None].to(self.device, non_blocking=True)
        return x, y


def make_batches(setup: Setup, config: TrainConfig, device: torch.device) -> TileBatches:
    """The batch source for ``config.feed``: ``auto`` cuts tiles on the device on CUDA and on the CPU otherwise (the
    NumPy sampler is the cheaper one there: docs/BENCHMARKS.md, GPU), ``device``/``host`` force either."""
    jitter = config.scale_jitter if config.augment else 0.0
    if feeds_on_device(config, device):
        sampler = D.DeviceTileSampler(setup.train, setup.tile, jitter, config.seed, device, dihedral=config.augment)
    else:
        sampler = D.TileSampler(setup.train, setup.tile, jitter, config.seed)
    return TileBatches(sampler, config.seed, device)


def feeds_on_device(config: TrainConfig, device: torch.device) -> bool:
    """Whether training tiles are cut on ``device`` (the training images then live there): ``config.feed``."""
    return config.feed == "device" or (config.feed == "auto" and device.type == "cuda")


def gpu_autosize(setup: Setup, config: TrainConfig, device: torch.device, loss_fn, say) -> int:
    """On CUDA with ``config.gpu_autosize``: the tile and batch from free GPU memory; ``config``'s sizes are floors.
    Sets ``setup.tile`` and returns the batch size.

    The tile is raised to ``GPU_TILE`` (as the images allow) and the batch to what free memory holds (up to
    ``GPU_MAX_BATCH``); where memory cannot hold ``config.batch_size`` such tiles, the tile shrinks instead
    (:func:`tile_and_batch_from_memory`). Memory per tile is measured, not guessed: two probe steps (forward +
    backward, on a copy of the model so that BatchNorm statistics are untouched) at two batch sizes give the fixed and
    the per-tile peak.
    """
    if device.type != "cuda" or not config.gpu_autosize:
        return config.batch_size
    stride = setup.spec.stride
    tile = D.effective_tile(setup.train, max(config.tile_size, GPU_TILE), stride)
    peak2, peak4 = _probe_peaks(setup, config, device, loss_fn, tile)
    # The training images move to the GPU after this (DeviceTileSampler): what they will hold is not free for tiles.
    held = D.DeviceTileSampler.device_bytes(setup.train) if feeds_on_device(config, device) else 0
    free = gpu_free_bytes(device) - held
    setup.tile, batch = tile_and_batch_from_memory(free, peak2, peak4, tile, min(setup.tile, tile), config.batch_size,
                                                   stride)
    say(f"GPU sizing: tile {setup.tile}, batch {batch} ({free / 2**30:.1f} GiB free besides "
        f"{held / 2**20:.0f} MiB of training images, "
        f"{(peak4 - peak2) / 2 / 2**20:.0f} MiB per {tile} px tile measured)")
    return batch


def _probe_peaks(setup: Setup, config: TrainConfig, device: torch.device, loss_fn, tile: int) -> tuple[int, int]:
    """Peak CUDA memory (bytes above what was allocated before) of one training step at batch 2 and at batch 4."""
    probe = copy.deepcopy(setup.model).train()
    peaks = []
    for b in (2, 4):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        x = torch.randn(b, 1, tile, tile, device=device)
        y = x if config.task == "denoising" else torch.zeros(b, 1, tile, tile, dtype=torch.long, device=device)
        loss_fn(_forward(probe, x, device, config.amp, setup.spec.in_channels, config.channels_last), y).backward()
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
        probe.zero_grad(set_to_none=True)
        del x, y
    del probe
    return peaks[0], peaks[1]


def gpu_free_bytes(device: torch.device) -> int:
    """Memory a new allocation on ``device`` can get: what the driver reports free plus what torch's caching
    allocator holds unused (the probe steps just left blocks there, which ``mem_get_info`` counts as taken)."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


GPU_TILE = 256  # tiles per second on an H100 grew 3x from 128^2 x 8 to 256^2 x 64 (issue 17's table)
GPU_MAX_BATCH = 64  # more tiles per step means fewer steps in a seconds-long fine-tune: capped, not yet tuned


def batch_from_memory(free_bytes: int, peak2: int, peak4: int, floor: int, cap: int = GPU_MAX_BATCH,
                      use: float = 0.6, scale: float = 1.0) -> int:
    """The largest batch whose extrapolated peak (from the peaks at batch 2 and 4; for a tile of ``scale`` times the
    area of the one they were measured at) fits ``use`` of free memory, between ``floor`` and ``max(floor, cap)``."""
    return max(floor, min(max(floor, cap), _fit(free_bytes, peak2, peak4, use, scale)))


def _fit(free_bytes: int, peak2: int, peak4: int, use: float, scale: float = 1.0) -> int:
    """How many tiles fit ``use`` of ``free_bytes``: a fixed peak plus a per-tile one (from the peaks at batch 2 and
    4), the per-tile part scaled by ``scale`` (the ratio of tile areas)."""
    per_tile = max(1.0, (peak4 - peak2) / 2)
    fixed = max(0.0, peak2 - 2 * per_tile)
    return int((free_bytes * use - fixed) // (per_tile * scale))


def tile_and_batch_from_memory(free_bytes: int, peak2: int, peak4: int, tile: int, min_tile: int, floor: int,
                               stride: int, cap: int = GPU_MAX_BATCH, use: float = 0.6) -> tuple[int, int]:
    """``(tile, batch)``: the largest tile, from ``tile`` (where the peaks were measured) down to ``min_tile`` in
    steps of ``stride``, at which ``floor`` tiles fit ``use`` of free memory, with the largest batch that fits there
    (at most ``max(floor, cap)``). Per-tile memory is taken to scale with the tile's area (activations do). When
    not even ``floor`` tiles of ``min_tile`` fit: ``(min_tile, floor)``, and the loop's out-of-memory handling
    halves the batch."""
    t = tile
    while t > min_tile and _fit(free_bytes, peak2, peak4, use, (t / tile) ** 2) < floor:
        t = max(min_tile, t - stride)
    return t, batch_from_memory(free_bytes, peak2, peak4, floor, cap, use, (t / tile) ** 2)


@dataclass
class Run:
    """The fixed parts of one training run (built once by :func:`_start_run`)."""

    config: TrainConfig
    setup: Setup
    workdir: Path
    out: Path
    device: torch.device
    optimizer: torch.optim.Optimizer
    loss_fn: Callable
    batches: TileBatches
    counts: dict
    say: Callable[[str], None]
    batch_size: int = 8  # the starting batch (config's, or chosen from free GPU memory)
    should_stop: Callable[[], bool] | None = None
    on_step: Callable[[dict], None] | None = None
    on_epoch: Callable[[dict], None] | None = None

    @property
    def model(self) -> torch.nn.Module:
        return self.setup.model

    @property
    def metrics_path(self) -> Path:
        return self.workdir / METRICS_FILE

    @property
    def seg(self) -> bool:
        return self.config.task == "segmentation"


@dataclass
class EpochOutcome:
    losses: list[float]
    steps: int  # steps taken this epoch (fewer than steps_per_epoch: cut by the budget or a cancel)
    stop_reason: str | None = None


# ------------------------------------------------------------------------------------------------ the loop
def _start_run(config: TrainConfig, workdir: Path, out: Path, device: torch.device, say, **hooks) -> Run:
    """Build the setup, move the model to the device, make the optimizer, loss and batch source."""
    from temzoo.device import describe_device

    setup = build_setup(config, log=say)
    model = setup.model
    for note in setup.notes:
        say(f"note: {note}")
    say(f"data: {setup.raw.description}; {setup.split}; working pixel size "
        f"{setup.target_pixel_size_nm if setup.target_pixel_size_nm else 'uncalibrated'}; tile {setup.tile}")
    counts = trainable_parameters(model, config.strategy)
    bf16 = ", bf16 autocast" if device.type == "cpu" and config.amp and cpu_bf16_native() else ""
    say(f"strategy {config.strategy}: {counts['trainable']:,} of {counts['total']:,} parameters trainable"
        f" (encoder {counts['encoder_trainable']:,}, decoder {counts['decoder_trainable']:,}, "
        f"head {counts['head_trainable']:,}); base {setup.base_id}; device {describe_device(device)}{bf16}")
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    wd = config.weight_decay if setup.strategy.uses_weight_decay() else 0.0
    # All parameters go to the optimizer (gradual unfreezes later); frozen ones have no gradient and are skipped.
    optimizer = torch.optim.AdamW(param_groups(model, setup.strategy.pretrained, config.base_lr_factor), lr=config.lr,
                                  weight_decay=wd)
    loss_fn = make_loss(config, setup.spec.classes)
    batch = gpu_autosize(setup, config, device, loss_fn, say)
    if config.compile:
        model.compile()  # in place: parameter names (and so checkpoints) stay as they are
    return Run(config=config, setup=setup, workdir=workdir, out=out, device=device, optimizer=optimizer,
               loss_fn=loss_fn, batches=make_batches(setup, config, device), counts=counts, say=say,
               batch_size=batch, **hooks)


def param_groups(model: torch.nn.Module, pretrained: set[str], base_lr_factor: float) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: with ``base_lr_factor`` != 1, the parameters loaded from the base train at
    that fraction of the scheduled rate (``lr_scale``) and new ones at the full rate; otherwise one group."""
    named = list(model.named_parameters())
    base = [p for n, p in named if n in pretrained]
    if base_lr_factor == 1.0 or not base:
        return [{"params": [p for _, p in named], "lr_scale": 1.0}]
    new = [p for n, p in named if n not in pretrained]
    return [g for g in ({"params": new, "lr_scale": 1.0}, {"params": base, "lr_scale": base_lr_factor})
            if g["params"]]


def _make_budget(run: Run, clock: Callable[[], float], t_start: float) -> Budget:
    config = run.config
    # At least 16 steps per epoch: validation + saving cost ~10 % of a budget at 8.
    steps = config.steps_per_epoch or max(16, math.ceil(run.batches.sampler.area_tiles / run.batch_size))
    return Budget(epochs=config.budget_epochs, seconds=config.minutes * 60 if config.minutes else None,
                  steps_per_epoch=steps, clock=clock, t_start=t_start)


def _restore(run: Run, resume: bool) -> TrainState:
    """A fresh state, or the one saved in ``last/`` (resume); metrics.jsonl is trimmed or restarted to match."""
    state = TrainState(batch_size=run.batch_size)
    if resume:
        found = find_state(run.workdir)
        if found is None:
            run.say("resume requested but no saved state: starting from the beginning")
            return state
        info = load_state(found, run.model, run.optimizer)
        if info.get("data_hash") != run.setup.raw.data_hash:
            raise JobError("the labelled set changed since this job started; start a new job instead of resuming")
        state = TrainState.from_resume_info(info, run.batch_size)
        _rewrite_metrics(run.metrics_path, state.epoch)
        run.say(f"resumed from {found.name} at epoch {state.epoch} (step {state.step}, {state.offset_s:.0f} s done)")
    elif run.metrics_path.exists():
        run.metrics_path.unlink()  # a fresh run in a reused folder starts a fresh history
    return state


def _score_the_base(run: Run, state: TrainState) -> None:
    """The base itself is the first candidate (epoch 0) of a fresh run.

    With a few labelled images a strong segmentation base can lose more than it learns (on simulated HRTEM, 2
    images took a base from F1 0.92 to 0.62-0.68), and a fine-tune must never hand back something worse on
    validation than what it started from.
    """
    if state.epoch != 0 or not _base_is_a_candidate(run.setup, run.config):
        return
    scores0 = validate(run)
    state.best_score, state.best_epoch, state.since_best = scores0["val_f1"], 0, 0
    state.best_record = {"epoch": 0, "step": 0, "seconds": 0.0, "train_loss": None, **scores0, "base": True}
    _save_result(run.model, run.setup, run.config, run.workdir / "best", state.best_record, run.counts, run.device,
                 0.0, "base", None)
    run.setup.notes.append(f"base before fine-tuning: val F1 {scores0['val_f1']:.3f}")
    run.say(f"base before fine-tuning: val F1 {scores0['val_f1']:.3f} (kept unless an epoch beats it)")


def validate(run: Run) -> dict[str, float | None]:
    """The validation hook: scores of the current weights on the validation images."""
    return evaluate_samples(run.model, run.setup.val, run.setup.spec, run.config, run.device, run.loss_fn)


def selection_score(run: Run, scores: dict, train_loss: float) -> float | None:
    """The selection hook: what "best epoch" maximises (val F1; else -val loss; else -train loss)."""
    if run.seg and run.setup.val:
        return scores["val_f1"]
    if run.setup.val:
        return -scores["val_loss"]
    return -train_loss


def _one_step(run: Run, state: TrainState, budget: Budget, g: torch.Generator) -> torch.Tensor | None:
    """One optimisation step at the scheduled learning rate; None when it ran out of memory (batch halved)."""
    state.lr = _lr_at(run.config, budget.progress(state.step))
    for group in run.optimizer.param_groups:
        group["lr"] = state.lr * group.get("lr_scale", 1.0)
    x, y = run.batches.next(state.batch_size)
    try:
        return _step(run.model, run.setup.strategy, run.optimizer, run.loss_fn, x, y, g, run.config, run.device,
                     run.setup.spec.in_channels, run.seg, dihedral_done=run.batches.dihedral_done)
    except Exception as err:  # noqa: BLE001 - only out-of-memory is handled here, everything else re-raised
        if not is_oom(err):
            raise
        run.optimizer.zero_grad(set_to_none=True)
        state.batch_size = smaller_batch(state.batch_size, run.device.type, run.say)
        return None


def train_epoch(run: Run, state: TrainState, budget: Budget) -> EpochOutcome:
    """One epoch of ``budget.steps_per_epoch`` steps (fewer when cancelled or out of time); ``state.epoch`` is
    the epoch being trained."""
    config = run.config
    strat = run.setup.strategy
    if strat.apply(budget.progress(state.step), state.epoch - 1):
        run.say(f"epoch {state.epoch}: {strat.describe()}")
    strat.train_mode()
    run.batches.start_epoch(state.epoch)
    g = torch.Generator(device=run.device).manual_seed(config.seed * 100003 + state.epoch)
    out = EpochOutcome(losses=[], steps=0)
    pending = None  # (loss, step) of the last step, not read yet
    while out.steps < budget.steps_per_epoch:
        if run.should_stop is not None and run.should_stop():
            out.stop_reason = "cancelled"
            break
        # A budget used up before the first step (slow start on a busy machine) still gets one step, so that
        # there is an epoch to validate and a result to write.
        if state.step > 0 and budget.time_up():
            out.stop_reason = "time"
            break
        loss = _one_step(run, state, budget, g)
        if loss is None:
            continue
        state.step += 1
        out.steps += 1
        # A step's loss is read after the next step is queued: reading it at once would make the CPU wait for the
        # GPU every step, and the GPU then idle while the CPU prepares the next batch.
        if pending is not None:
            _account(run, state, budget, out, *pending)
        pending = (loss, state.step)
    if pending is not None:
        _account(run, state, budget, out, *pending)
    return out


def _account(run: Run, state: TrainState, budget: Budget, out: EpochOutcome, loss, step: int) -> None:
    """Record one finished step's loss (a tensor or float) and report it; a non-finite loss ends the run."""
    loss_val = float(loss)
    if not math.isfinite(loss_val):
        raise JobError(f"the training loss became {loss_val} at step {step}; lower the learning rate")
    out.losses.append(loss_val)
    if run.on_step is not None:
        run.on_step({"epoch": state.epoch, "step": step, "progress": min(1.0, budget.progress(step)),
                     "loss": loss_val, "seconds": budget.elapsed()})


def _end_epoch(run: Run, state: TrainState, budget: Budget, outcome: EpochOutcome, wall_start: float,
               t_epoch: float) -> dict:
    """Validate, keep the best, append to metrics.jsonl, save the resume state; returns the epoch's record."""
    t_val = budget.elapsed()
    scores = validate(run)
    train_loss = float(np.mean(outcome.losses))
    record = {"epoch": state.epoch, "step": state.step, "seconds": round(budget.elapsed(), 3),
              "wall_seconds": round(time.monotonic() - wall_start, 3), "clock": run.config.clock,
              "train_loss": train_loss, **scores, "lr": state.lr, "batch_size": state.batch_size,
              "device": run.device.type,
              "trainable": sum(p.numel() for p in run.model.parameters() if p.requires_grad),
              "partial": outcome.steps < budget.steps_per_epoch}
    score = selection_score(run, scores, train_loss)
    improved = _is_better(score, state.best_score)
    if improved:
        state.best_score, state.best_epoch, state.best_record, state.since_best = score, state.epoch, dict(record), 0
        _save_result(run.model, run.setup, run.config, run.workdir / "best", record, run.counts, run.device,
                     budget.elapsed(), "best so far", metrics_path=None)
    else:
        state.since_best += 1
    record["best"] = improved
    with open(run.metrics_path, "a") as f:
        f.write(json.dumps(record) + "\n")
    save_state(run.workdir / "last", run.model, run.optimizer, {
        **state.resume_info(budget.elapsed()), "data_hash": run.setup.raw.data_hash, "config": run.config.to_dict()})
    budget.measured_end_of_epoch(budget.elapsed() - t_val)
    f1s = f", val F1 {scores['val_f1']:.3f}" if scores.get("val_f1") is not None else ""
    run.say(f"epoch {state.epoch}: train loss {train_loss:.4f}"
            + (f", val loss {scores['val_loss']:.4f}" if scores.get("val_loss") is not None else "")
            + f"{f1s}, {time.monotonic() - t_epoch:.1f} s{' (best)' if improved else ''}")
    if run.on_epoch is not None:
        run.on_epoch(dict(record))
    return record


def _run_epochs(run: Run, state: TrainState, budget: Budget) -> tuple[str, int]:
    """Epochs until the budget, a cancel or early stopping ends the run; returns (stop reason, epochs done)."""
    wall_start = time.monotonic()
    done = state.epoch
    while True:
        if budget.epochs and state.epoch >= budget.epochs:
            return "epochs", done
        if done > 0 and budget.time_up():
            return "time", done
        state.epoch += 1
        t_epoch = time.monotonic()
        outcome = train_epoch(run, state, budget)
        if not outcome.losses or outcome.stop_reason == "cancelled":
            # Nothing trained, or cancelled mid-epoch: the partial epoch is dropped (not validated or saved), so
            # last/ stays at an epoch boundary and a resumed run repeats exactly what the uninterrupted one does.
            state.epoch -= 1
            return outcome.stop_reason or "epochs", done
        _end_epoch(run, state, budget, outcome, wall_start, t_epoch)
        done = state.epoch
        # Early stopping only in the second half of the schedule: the high-lr first half of the cosine explores (a
        # plateau there is not the end; on UO2 stopping at 80 % of a 4-minute budget cost 0.013 test F1, one run).
        # Only on validation: without it (validation "none") the run is a fixed schedule, and the noisy training loss
        # of random tiles stopped every such run at the half-way mark, before the low-rate half ran.
        if run.config.patience and run.setup.val and state.since_best >= run.config.patience \
                and budget.progress(state.step) >= 0.5:
            return "early stopping", done
        if outcome.steps < budget.steps_per_epoch:
            return "time", done


def _finish(run: Run, state: TrainState, budget: Budget, stop_reason: str, epochs_done: int) -> Path:
    """Write the best epoch's weights (early stopping keeps the best, not the last) as the result folder."""
    best = state.best_record
    if best and best.get("base") and epochs_done > 0:
        note = (f"{BASE_KEPT_NOTE} on validation (val F1 {best['val_f1']:.3f}): the result is the base's "
                "weights unchanged; try a smaller learning rate, freeze-encoder or l2sp, or label more images")
        run.setup.notes.append(note)
        run.say(note)
    if epochs_done == 0 or not (run.workdir / "best").is_dir():
        if stop_reason == "cancelled":
            raise JobError("cancelled before the first epoch finished: nothing to save")
        raise JobError("training stopped before its first epoch finished; give it more time or epochs")
    from safetensors.torch import load_file

    best_state = load_file(str(run.workdir / "best" / "model.safetensors"), device="cpu")
    final = copy.deepcopy(run.model).to("cpu").to(memory_format=torch.contiguous_format)
    final.load_state_dict(best_state)
    final.eval()
    result = _save_result(final, run.setup, run.config, run.out, dict(best or {}, epochs_run=epochs_done),
                          run.counts, run.device, budget.elapsed(), stop_reason, metrics_path=run.metrics_path)
    run.say(f"done ({stop_reason}) after {epochs_done} epochs, {budget.elapsed():.0f} s; best epoch "
            f"{state.best_epoch}" + (f" val F1 {best['val_f1']:.3f}" if best and best.get("val_f1") is not None
                                     else "") + f"; result in {result}")
    return result


def train(
    config: TrainConfig,
    workdir: str | Path,
    *,
    out: str | Path | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = False,
    on_step: Callable[[dict], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Run training; returns the zoo-format result folder (``out``, default ``workdir/result``).

    Appends one JSON line per epoch to ``workdir/metrics.jsonl`` (epoch, step, seconds, train_loss, val_loss,
    val_f1, val_iou, lr, batch_size, device, ...); keeps ``workdir/last/`` (resume state, atomic) and
    ``workdir/best/`` (zoo-format checkpoint of the best epoch). ``resume=True`` continues from ``last/`` (a fresh
    start if there is none). ``should_stop()`` is polled every step (cancel: the run ends at once, keeping its
    state and writing the best result so far); ``on_epoch(record)`` after each epoch; ``on_step(info)`` after each
    step (progress 0..1, loss) for progress bars; ``log(line)`` receives human-readable log lines.
    """
    from temzoo.device import pick_device

    config = TrainConfig.from_dict(config.to_dict()).validate()  # a private copy, checked
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out = Path(out) if out is not None else workdir / "result"
    logfile = workdir / LOG_FILE

    def say(msg: str) -> None:
        with open(logfile, "a") as f:
            f.write(f"{datetime.now().isoformat(timespec='seconds')} {msg}\n")
        (log or logger.info)(msg)

    clock = time.process_time if config.clock == "cpu" else time.monotonic
    t_start = clock()
    device = pick_device(config.device)
    threads_before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(config.cpu_threads))
    try:
        run = _start_run(config, workdir, out, device, say, should_stop=should_stop, on_step=on_step,
                         on_epoch=on_epoch)
        budget = _make_budget(run, clock, t_start)
        state = _restore(run, resume)
        budget.offset_s = state.offset_s
        _score_the_base(run, state)
        stop_reason, epochs_done = _run_epochs(run, state, budget)
        return _finish(run, state, budget, stop_reason, epochs_done)
    finally:
        torch.set_num_threads(threads_before)


def _step(model, strat: Strategy, optimizer, loss_fn, x: torch.Tensor, y: torch.Tensor | None, g: torch.Generator,
          config: TrainConfig, device: torch.device, in_channels: int, seg: bool,
          dihedral_done: bool = False) -> torch.Tensor:
    """One optimisation step on a batch of tiles on the device (augmented there); returns the loss."""
    hidden = None
    if seg:
        if config.augment:
            x, y = augment_batch(x, y, g, noise_probability=config.noise_probability, dose_range=config.dose_range,
                                 jitter=config.intensity_jitter, dihedral=not dihedral_done)
        target = y
    else:
        x, _ = random_dihedral(x, None, g) if config.augment and not dihedral_done else (x, None)
        target = x
        hidden = _corrupt_mask(x, config, g)
        if hidden is None:
            x = poisson_noise(x, random_doses(x.shape[0], config.dose_range, g), g)
        else:
            x = x * (1 - hidden)
    logits = _forward(model, x, device, config.amp, in_channels, config.channels_last)
    loss = (loss_fn(logits.float(), target) if hidden is None
            else masked_loss(loss_fn, logits.float(), target, hidden))
    pen = strat.penalty()
    total = loss + pen if pen is not None else loss
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return loss.detach()  # a tensor: the caller reads it a step later (no wait on the device here)


def _task_words(config: TrainConfig) -> str:
    """What the run did, for a description nobody gave."""
    if config.task != "denoising":
        return "Fine-tuned"
    return "Masked-reconstruction pretraining" if config.corruption == "mask" else "Denoising pretraining"


def _corrupt_mask(x: torch.Tensor, config: TrainConfig, g: torch.Generator) -> torch.Tensor | None:
    """The hidden blocks of a masked-reconstruction batch (1 = hidden), or None for Poisson denoising. Hidden pixels
    become 0, the mean of a standardised image, so the net sees no trace of what it must fill in."""
    if config.corruption != "mask":
        return None
    return block_mask(x.shape[0], x.shape[-2], x.shape[-1], config.mask_ratio, config.mask_patch, g).to(x.dtype)


def _provenance(setup: Setup, config: TrainConfig, record: dict, counts: dict, device, seconds: float,
                stop_reason: str) -> dict[str, Any]:
    from temzoo.device import describe_device
    from temzoo.zoo.checkpoint import versions

    base_prov = dict(getattr(setup.base_meta, "provenance", {}) or {})
    lineage = list(base_prov.get("lineage") or [])
    if setup.base_meta is not None and _uses_base(config):
        lineage.append({"model": setup.base_id, "task": setup.base_meta.task,
                        "strategy": base_prov.get("strategy"), "data_hash": base_prov.get("data_hash")})
    metrics = {k: record[k] for k in ("val_f1", "val_iou", "val_loss", "val_psnr") if record.get(k) is not None}
    metrics = {k.removeprefix("val_"): round(float(v), 5) for k, v in metrics.items()}
    return {
        "base_model": None if not _uses_base(config) else setup.base_id,
        "strategy": config.strategy,
        "task": config.task,
        "training_data": setup.raw.description,
        "data_hash": "sha256:" + setup.raw.data_hash,
        "split": setup.split,
        "train_images": sorted({s.name for s in setup.train}),
        "val_images": sorted({s.name for s in setup.val}),
        "metrics": metrics,
        "eval_data": f"validation images of the training set ({setup.split})",
        "best_epoch": record.get("epoch"),
        "epochs_run": record.get("epochs_run", record.get("epoch")),
        "seconds": round(seconds, 1),
        "stopped": stop_reason,
        "device": device.type,
        "device_name": describe_device(device),  # where it trained (the card says so), e.g. "cuda (NVIDIA H200, ...)"
        "size": setup.spec.size,  # temzoo.zoo.meta.SIZES name of the network (None: another network)
        "trainable_parameters": counts["trainable"],
        "total_parameters": counts["total"],
        "head_reinitialised": setup.head_reinitialised,
        "lineage": lineage,
        "citation": _citations(setup, config),
        "notes": setup.notes,
        "config": config.to_dict(),
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _citations(setup: Setup, config: TrainConfig) -> list[str]:
    """The card's papers: only those of this model's own lineage (temzoo.zoo.cards.lineage_citations)."""
    from temzoo.zoo.cards import lineage_citations

    return lineage_citations(setup.base_meta if _uses_base(config) else None, config.task, config.strategy,
                             config.corruption)


def _save_result(model, setup: Setup, config: TrainConfig, folder: Path, record: dict, counts: dict, device,
                 seconds: float, stop_reason: str, metrics_path: Path | None) -> Path:
    """Write a zoo-format folder atomically (plus metrics.jsonl for the final result)."""
    from temzoo.zoo.checkpoint import TemzooMeta, save_checkpoint

    base = setup.base_meta
    desc = config.description or (
        f"{_task_words(config)} on {setup.raw.description} "
        f"(strategy {config.strategy}, base {setup.base_id})")
    meta = TemzooMeta(
        pixel_size_nm=setup.target_pixel_size_nm,
        task=config.task,
        class_names=setup.class_names if config.task == "segmentation" else ["background", "foreground"],
        normalization=setup.norm.to_dict(),
        tile_size=max(setup.tile, getattr(base, "tile_size", 0) or 0, 256),
        receptive_field_px=getattr(base, "receptive_field_px", None),
        input_downsample=float(setup.downsample) if setup.target_pixel_size_nm is None else 1.0,
        class_kinds=_class_kinds(setup, config),
        description=desc,
        provenance=_provenance(setup, config, record, counts, device, seconds, stop_reason),
    )
    model = copy.deepcopy(model).to("cpu").to(memory_format=torch.contiguous_format).eval()
    # The domain-shift reference (an encoder pass over every training image, on the CPU) only for the final result:
    # computed at every improving epoch it stalled a GPU run for longer than the epoch itself.
    meta.provenance["ood"] = _ood_reference(model, setup) if metrics_path is not None else None
    card = _card(meta, setup.spec, model, folder.name)
    if metrics_path is None:
        return save_checkpoint(model, folder, meta, card)

    def fill(tmp: Path) -> None:
        inner = save_checkpoint(model, tmp / "ckpt", meta, card)
        for p in inner.iterdir():
            p.rename(tmp / p.name)
        inner.rmdir()
        if metrics_path.exists():
            (tmp / METRICS_FILE).write_text(metrics_path.read_text())

    try:
        return atomic_dir(folder, fill)
    except OSError as err:
        raise TemzooError(f"could not write the result to {folder}: {err.strerror or err}") from None


def _class_kinds(setup: Setup, config: TrainConfig) -> list[str] | None:
    """objects or network for the foreground class: as the config says, else read off the training masks."""
    if config.task != "segmentation":
        return None
    from temzoo.metrics import guess_kind

    kind = config.class_kind or guess_kind([s.mask for s in setup.train if s.mask is not None])
    return [kind] * max(1, len(setup.class_names) - 1)


def _ood_reference(model, setup: Setup) -> dict | None:
    """The domain-shift reference (temzoo.ood) of the training images, threshold from training + validation."""
    from temzoo.ood import fit_reference

    train = [s.image for s in setup.train]
    if not train:
        return None
    return fit_reference(model, train, [s.image for s in setup.val],
                         source=f"training: {len(train)} train / {len(setup.val)} validation images").to_dict()


def _card(meta, spec, model, name: str) -> str:
    try:
        from temzoo.zoo.cards import render_card
    except ImportError:  # the zoo's card module is optional here
        return f"---\nlibrary_name: segmentation-models-pytorch\ntags: [temzoo, {meta.task}]\n---\n# {name}\n\n{meta.description}\n"
    return render_card(meta, spec, model_id=name, params=sum(p.numel() for p in model.parameters()))


__all__ = ["Budget", "Run", "Setup", "TileBatches", "TrainState", "build_setup", "evaluate_samples", "make_loss",
           "selection_score", "train", "train_epoch", "validate"]
