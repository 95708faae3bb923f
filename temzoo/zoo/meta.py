"""What a checkpoint folder says about itself: file names, the network spec and ``temzoo.json``.

Split from :mod:`temzoo.zoo.checkpoint` so the card writer (:mod:`temzoo.zoo.cards`) can read a folder's metadata
without importing the checkpoint loader that calls it (no import circle).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from temzoo.errors import ModelError, TemzooError
from temzoo.preprocess import Normalization

META_FILE = "temzoo.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
# Files that can execute code when loaded; a folder holding any of them is refused outright.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass
class ModelSpec:
    """The network: an smp architecture built with ``encoder_weights=None`` (loading never reaches for ImageNet).

    The default is small and CPU-friendly: a timm ResNet-18 cut after 3 stages (0.88 M parameters, 3.5 MB).
    """

    arch: str = "Unet"
    encoder_name: str = "tu-resnet18"
    encoder_depth: int = 3
    decoder_channels: tuple[int, ...] = (64, 32, 16)
    in_channels: int = 1
    classes: int = 1

    def build(self):
        import segmentation_models_pytorch as smp

        return smp.create_model(
            self.arch,
            encoder_name=self.encoder_name,
            encoder_weights=None,
            encoder_depth=self.encoder_depth,
            decoder_channels=tuple(self.decoder_channels),
            in_channels=self.in_channels,
            classes=self.classes,
        )

    @property
    def stride(self) -> int:
        """Input sizes must be multiples of this (the encoder's total downsampling)."""
        return 2**self.encoder_depth

    @classmethod
    def preset(cls, size: str) -> ModelSpec:
        """The named network size (:data:`SIZES`): ``small`` (the CPU default) or ``large`` (the CUDA default)."""
        if size not in SIZES:
            raise ModelError(f"unknown network size {size!r}; choose one of {', '.join(SIZES)}")
        return cls(**SIZES[size])

    @property
    def size(self) -> str | None:
        """The :data:`SIZES` name this network is (class and input-channel counts aside), or None for another one."""
        return next((name for name in SIZES if replace(self.preset(name), classes=self.classes,
                                                        in_channels=self.in_channels) == self), None)


# Named network sizes (smp init arguments beyond the ModelSpec defaults). Measured on this project's CPU (AMD EPYC,
# one thread; docs/ZOO_SIZES.md): small 0.88 M parameters, 0.45 CPU-s per 512^2 forward pass; large 14.3 M, 0.63 s.
# large is a full-depth U-Net on the same timm ResNet-18 (its first three stages are small's encoder), so
# `timm:resnet18` ImageNet weights are a large network too.
SIZES: dict[str, dict[str, Any]] = {
    "small": {},
    "large": {"encoder_name": "tu-resnet18", "encoder_depth": 5, "decoder_channels": (256, 128, 64, 32, 16)},
}
DEVICE_SIZE = {"cuda": "large", "cpu": "small"}  # the size a run from scratch gets when none is asked for


def size_for_device(size: str | None, device: str = "auto") -> str:
    """``size`` when given (checked), else the device's default: large on CUDA, small on a CPU (``auto``: CUDA if
    this machine has a GPU)."""
    if size is not None:
        ModelSpec.preset(size)  # raises on an unknown name
        return size
    from temzoo.device import pick_device

    return DEVICE_SIZE.get(pick_device(device).type, "small")


@dataclass
class TemzooMeta:
    """Contents of ``temzoo.json``: the pretrained config that travels with the weights (as in timm)."""

    pixel_size_nm: float | None = None
    task: str = "segmentation"  # or "denoising" (a pretraining base; outputs an image, not a mask)
    class_names: list[str] = field(default_factory=lambda: ["background", "foreground"])
    normalization: dict = field(default_factory=lambda: Normalization().to_dict())
    tile_size: int = 512
    receptive_field_px: int | None = None
    # For a model without a pixel size: how much its (uncalibrated) training images were shrunk. Inputs are shrunk
    # alike before prediction, so a model trained at half resolution is not run at full resolution.
    input_downsample: float = 1.0
    # one per foreground class: "objects" (particles, bubbles, loops) or "network" (grain boundaries, lines); the
    # metrics follow it (temzoo.metrics.class_kind). None: not recorded (objects assumed).
    class_kinds: list[str] | None = None
    description: str = ""
    # base_model, training_data, data_hash, strategy, metrics, versions, created, lineage ...
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = 1

    @property
    def norm(self) -> Normalization:
        return Normalization.from_dict(self.normalization)

    def to_json(self) -> str:
        """The temzoo.json text. Never a non-finite number (issue #12): a NaN/inf pixel size is refused; a
        non-finite score (e.g. a metric with nothing to measure) is written as null."""
        from temzoo.io.units import check_pixel_size
        from temzoo.io.writers import _jsonable

        if self.pixel_size_nm is not None:
            try:
                check_pixel_size(self.pixel_size_nm, "the model's pixel size")
            except TemzooError as err:
                raise ModelError(f"{err}; the checkpoint was not saved") from None
        return json.dumps(_jsonable(asdict(self)), indent=2, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict) -> TemzooMeta:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def spec_from_config(config: dict) -> ModelSpec:
    try:
        return ModelSpec(
            arch=config["_model_class"],
            encoder_name=config["encoder_name"],
            encoder_depth=int(config.get("encoder_depth", 5)),
            decoder_channels=tuple(config.get("decoder_channels", (256, 128, 64, 32, 16))),
            in_channels=int(config.get("in_channels", 3)),
            classes=int(config.get("classes", 1)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"config.json lacks a valid {err} entry; is this an smp checkpoint folder?") from None


def read_meta(folder: str | Path) -> TemzooMeta:
    """``temzoo.json`` of a folder; a plain smp folder without one gets defaults (uncalibrated)."""
    p = Path(folder) / META_FILE
    if not p.exists():
        return TemzooMeta()
    try:
        return TemzooMeta.from_dict(json.loads(p.read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise ModelError(f"{p} is not valid JSON ({err}); restore it from the original checkpoint") from None
