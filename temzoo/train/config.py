"""Training configuration: one dataclass shared by the CLI, background jobs and the app (stored as config.json)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from temzoo.errors import TemzooError
from temzoo.io.units import check_pixel_size

VALIDATIONS = ("regions", "image", "none")
# The registered strategies (temzoo.train.strategies), named here so that a CLI or form can list them without
# importing torch; tests/test_strategies.py checks the two agree.
STRATEGIES = ("scratch", "freeze-encoder", "freeze-decoder", "full", "gradual", "l2", "l2sp")
TASKS = ("segmentation", "denoising")
# Self-supervised corruptions of the denoising task: Poisson shot noise (Kazimi & Sandfeld) or hidden blocks to
# reconstruct from their context (masked reconstruction; the second self-supervised direction).
CORRUPTIONS = ("poisson", "mask")
LOSSES = ("bce+dice", "focal", "bce", "dice", "mse", "l1")
# The recommended strategy when a pretrained base exists (see docs/FINETUNING.md for the measurements behind it).
RECOMMENDED_STRATEGY = "full"
# The network sizes a run from scratch can ask for (temzoo.zoo.meta.SIZES holds their definitions; listed here so a
# CLI or form can offer them without importing torch; tests/test_zoo_sizes.py checks the two agree).
SIZES = ("small", "large")
DEFAULT_EPOCHS = 30  # used when neither epochs nor minutes is given


# Start of the note a fine-tune records when no epoch beat its base on validation (the result is then the base
# unchanged); the trainer writes it, the job views look for it.
BASE_KEPT_NOTE = "no epoch beat the base"


LR_MAX = 10.0  # a peak learning rate above this diverges for every optimiser temzoo uses
DOWNSAMPLE_RANGE = (0.01, 64.0)  # shrink factors: beyond 64 a 4k image is under 64 px; below 0.01 it is 100x larger


@dataclass
class TrainConfig:
    """Everything a training run needs; ``to_dict``/``from_dict`` round-trip through JSON."""

    images: str  # folder of images (any format temzoo.io reads)
    masks: str | None = None  # folder of masks matched by file stem, or a COCO .json, or a YOLO-seg folder
    annotations: str | None = None  # COCO json or YOLO-seg folder instead of masks
    base: str = "scratch"  # zoo id / folder / Hub id (temzoo.zoo.load_model); "scratch" = random init
    strategy: str = "full"
    task: str = "segmentation"  # or "denoising" (pretrain-denoise)
    # Network size for a run from scratch (temzoo.zoo.meta.SIZES: small, large); None = by device (large on CUDA,
    # small on a CPU). A base brings its own network: asking for another size with one is an error.
    size: str | None = None
    epochs: int | None = None
    minutes: float | None = None  # time budget; either or both (the first reached stops)
    pixel_size_nm: float | None = None  # pixel size of the images (overrides the files' calibration)
    seed: int = 0
    device: str = "auto"
    # Defaults measured on a CPU with 4 labelled UO2 images (docs/FINETUNING.md): small tiles and a larger batch give
    # more, cheaper steps; 3e-3 converged fastest from scratch and from a denoising base. On a GPU use larger tiles.
    batch_size: int = 8
    tile_size: int = 128
    lr: float = 3e-3
    loss: str = "bce+dice"  # or "focal" (segmentation); denoising uses "mse" (or "l1")
    val_fraction: float = 0.25  # share of each image (regions) or of the images (image) that validates; never tiles
    # Model selection: "regions" trains on every image and validates on a val_fraction band of each
    # (temzoo.train.data.split_by_region); "image" holds out whole images (val_fraction of them); "none" trains on
    # everything for the whole schedule and keeps the epoch with the lowest training loss. "regions" is the default
    # since 2026-12-05: with 2 or 4 labelled images it tied or beat "image" in every paired comparison but two (UO2,
    # steel; 3 seeds each), and it trains on every labelled image (docs/PRETRAINING_STUDY.md section 13).
    validation: str = "regions"
    l2_lambda: float = 1e-4
    l2sp_alpha: float = 1e-2
    l2sp_beta: float = 1e-4
    patience: int = 10  # epochs without a better validation score before stopping (in the schedule's second half)
    # --- beyond the contract ---
    # Pixel size the model works at. None = automatic: the base's own pixel size when both it and the images are
    # calibrated (so a zoo model sees the scale it learnt), otherwise the images' pixel size times ``downsample``.
    target_pixel_size_nm: float | None = None
    # Shrink factor applied when the target is automatic and the base does not fix the scale (e.g. 2 for 1024^2
    # bright-field images whose features span many pixels: 4x fewer pixels per step on a CPU).
    # None = the base's own input_downsample (a base trained at half resolution is fine-tuned and scored at it), else 1.
    downsample: float | None = None
    val_names: list[str] | None = None  # pin the validation images by file stem (e.g. to compare strategies)
    weight_decay: float = 1e-4  # AdamW's decoupled decay (set to 0 for l2/l2sp, whose penalty replaces it)
    warmup_fraction: float = 0.03
    min_lr_fraction: float = 0.02  # the cosine schedule ends at lr * this
    # Learning rate of the parameters loaded from a base, as a fraction of ``lr`` (discriminative fine-tuning, as in
    # ULMFiT; new parameters, e.g. a reinitialised head, keep ``lr``). 1 = one rate for all, as from scratch.
    base_lr_factor: float = 1.0
    # Rescale the base's kernels that feed BatchNorm to the norm of a fresh initialisation (temzoo.train.rescale):
    # the base computes the same, but learns at scratch's speed instead of 2-4x slower.
    base_rescale: bool = False
    steps_per_epoch: int | None = None  # None: enough random tiles to cover the training images once (>= 16)
    freeze_bn_below: int = 8  # full/l2/l2sp/gradual: BatchNorm statistics of pretrained parts frozen below this batch
    unfreeze_every: int | None = None  # gradual: epochs per stage; None spreads the stages over the budget
    augment: bool = True
    scale_jitter: float = 0.1  # +-10 % zoom around the target pixel size
    intensity_jitter: float = 0.2  # contrast x(1/1.2..1.2) and brightness +-0.2 sd; 0 turns it off
    # Fraction of tiles given Poisson noise at a random dose (segmentation). Off by default: on 4 UO2 images in 4
    # CPU-minutes, noise on half the tiles cost 0.02 validation F1 (it slows early learning); turn it on when the
    # images to segment will be noisier than the labelled ones (e.g. simulated -> low-dose real).
    noise_probability: float = 0.0
    dose_range: tuple[float, float] = (2.0, 200.0)  # mean counts per pixel for the Poisson noise
    corruption: str = "poisson"  # denoising task: "poisson" (restore shot noise) or "mask" (fill hidden blocks)
    mask_ratio: float = 0.5  # corruption "mask": share of the grid's blocks hidden
    mask_patch: int = 16  # corruption "mask": block side in px (at the working pixel size)
    channels_last: bool = True  # memory layout for convolutions (25 % faster steps on this CPU too, measured)
    amp: bool = True  # bf16 autocast on CUDA, and on CPUs with native bf16 (temzoo.device.cpu_bf16_native)
    # CPU threads; None = automatic: as many as the machine has idle cores (OpenMP threads fighting other processes
    # for busy cores run 10-30x slower than one thread, measured on a loaded 2-core machine).
    cpu_threads: int | None = None
    # What ``minutes`` measures: "wall" (elapsed time) or "cpu" (this process's CPU time, all threads): "CPU-minutes"
    # make budgets comparable on a shared machine, where wall time depends on everyone else's load.
    clock: str = "wall"
    # Where training tiles are cut: "auto" (on the GPU on CUDA, on the CPU otherwise), "device" or "host".
    feed: str = "auto"
    # CUDA: tile_size and batch_size are floors, raised to a 256 px tile and the batch free GPU memory holds (<= 64).
    gpu_autosize: bool = True
    compile: bool = False  # torch.compile the model in place (off: not yet measured to help; see docs/BENCHMARKS.md)
    class_names: list[str] | None = None  # default from the masks (binary: background, foreground)
    class_kind: str | None = None  # "objects" or "network" (boundaries, lines); None: read off the training masks
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.dose_range, list):
            self.dose_range = tuple(self.dose_range)  # type: ignore[assignment]

    def validate(self) -> TrainConfig:
        """Raise :class:`TemzooError` (one line) for values no training run can use; return self."""
        from temzoo.train.strategies import check_base

        check_base(self.strategy, self.base)  # the registry is the one list of strategies and owns their validity
        self._validate_numbers()
        if self.task not in TASKS:
            raise TemzooError(f"unknown task {self.task!r}; choose segmentation or denoising")
        if self.corruption not in CORRUPTIONS:
            raise TemzooError(f"unknown corruption {self.corruption!r}; choose one of {', '.join(CORRUPTIONS)}")
        if self.corruption != "poisson" and self.task != "denoising":
            raise TemzooError(f"corruption {self.corruption!r} is for the denoising task (pretrain-denoise), not "
                              f"{self.task}")
        if self.loss not in LOSSES:
            raise TemzooError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.feed not in ("auto", "device", "host"):
            raise TemzooError(f"unknown feed {self.feed!r}; use auto, device or host")
        if self.clock not in ("wall", "cpu"):
            raise TemzooError(f"unknown clock {self.clock!r}; use wall or cpu")
        for name in ("pixel_size_nm", "target_pixel_size_nm"):
            v = getattr(self, name)
            if v is not None:
                check_pixel_size(v, name.replace("_", " "))
        if self.size is not None and self.size not in SIZES:
            raise TemzooError(f"unknown network size {self.size!r}; choose one of {', '.join(SIZES)}")
        if self.validation not in VALIDATIONS:
            raise TemzooError(f"unknown validation {self.validation!r}; choose one of {', '.join(VALIDATIONS)}")
        if self.class_kind is not None and self.class_kind not in ("objects", "network"):
            raise TemzooError(f"class kind must be objects or network (got {self.class_kind!r})")
        if self.task == "segmentation" and self.masks is None and self.annotations is None:
            raise TemzooError("segmentation needs labels: give a masks folder, a COCO json or a YOLO-seg folder")
        return self

    def _validate_numbers(self) -> None:
        """Ranges of the numeric settings (temzoo.validate): never a NaN, an infinity or an absurd value."""
        from temzoo.validate import number, seed, switch

        self.seed = seed(self.seed, "seed")
        for name in ("augment", "base_rescale"):
            switch(getattr(self, name), name.replace("_", " "))
        if self.epochs is not None:
            number(self.epochs, "epochs", 1, 100_000, integer=True)
        if self.minutes is not None:
            number(self.minutes, "minutes", 0, 525_600, lo_open=True)
        number(self.batch_size, "batch size", 1, 4096, integer=True)
        number(self.tile_size, "tile size", 16, 8192, integer=True)
        number(self.lr, "learning rate", 0, LR_MAX, lo_open=True)
        number(self.base_lr_factor, "base lr factor", 0, 1, lo_open=True)
        if self.downsample is not None:
            number(self.downsample, "downsample", *DOWNSAMPLE_RANGE)
        number(self.val_fraction, "validation fraction", 0, 0.95)
        number(self.noise_probability, "noise probability", 0, 1)
        number(self.mask_ratio, "mask ratio", 0, 0.95, lo_open=True)  # all hidden: no context left
        number(self.mask_patch, "mask patch", 1, 1024, integer=True)
        for name in ("l2_lambda", "l2sp_alpha", "l2sp_beta", "weight_decay"):
            number(getattr(self, name), name.replace("_", " "), 0, 1e3)
        for name in ("warmup_fraction", "min_lr_fraction", "scale_jitter", "intensity_jitter"):
            number(getattr(self, name), name.replace("_", " "), 0, 1)
        number(self.patience, "patience", 0, 100_000, integer=True)
        number(self.freeze_bn_below, "freeze BN below", 0, 4096, integer=True)
        for name, hi in (("unfreeze_every", 100_000), ("cpu_threads", 1024)):
            if getattr(self, name) is not None:
                number(getattr(self, name), name.replace("_", " "), 1, hi, integer=True)
        if self.steps_per_epoch is not None:
            number(self.steps_per_epoch, "steps per epoch", 1, 10_000_000, integer=True)
        lo, hi = (number(v, "dose range", 0, 1e9, lo_open=True) for v in self.dose_range)
        if hi < lo:
            raise TemzooError(f"dose range {lo:g}:{hi:g} is empty; give LO <= HI")

    @property
    def budget_epochs(self) -> int | None:
        """Epoch limit actually used (a default when neither epochs nor minutes is given)."""
        if self.epochs is None and self.minutes is None:
            return DEFAULT_EPOCHS
        return self.epochs

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dose_range"] = list(self.dose_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a dict (unknown keys are ignored, so older/newer job folders still load)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
