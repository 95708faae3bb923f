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
from temzoo.validate import _show  # the one way an offending value is quoted in an error line

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
        """Validated as a ``temzoo.json`` read from disk (:func:`meta_from_dict`)."""
        return meta_from_dict(d)


# What a config.json may ask temzoo to build: the architectures ModelSpec.build can make (their decoders take one
# channel count per encoder stage) and common U-Net encoders up to ResNet-101 size. Anything else is refused before
# a module is constructed, so a crafted config cannot make the loader allocate a giant network.
ALLOWED_ARCHS = ("Unet", "UnetPlusPlus", "MAnet")
ALLOWED_ENCODERS = frozenset(
    [f"resnet{n}" for n in (18, 34, 50, 101)] + ["resnext50_32x4d", "se_resnet50", "se_resnext50_32x4d",
                                                 "densenet121", "vgg16_bn", "mobilenet_v2"]
    + [f"efficientnet-b{i}" for i in range(5)] + [f"timm-efficientnet-b{i}" for i in range(5)]
    + [f"mit_b{i}" for i in range(3)] + [f"mobileone_s{i}" for i in range(3)]
    + [f"tu-resnet{n}" for n in (18, 34, 50, 101)] + [f"tu-efficientnet_b{i}" for i in range(5)]
    + ["tu-resnext50_32x4d", "tu-seresnext50_32x4d", "tu-convnext_tiny", "tu-convnext_small", "tu-densenet121",
       "tu-mobilenetv3_large_100", "tu-regnety_016", "tu-regnety_032"]
)
MAX_DECODER_CHANNELS = 1024
MAX_CONFIG_BYTES = 1 << 20  # config.json and temzoo.json are a few kB
TASKS = ("segmentation", "denoising")
NORM_METHODS = ("standardize", "none")
CLASS_KINDS = ("objects", "network")


def _num(value: Any, name: str, where: str, lo: float, hi: float, *, integer: bool = False,
         lo_open: bool = False) -> float | int:
    """A JSON number in range (strings, booleans, NaN and infinities refused), else ModelError naming the field."""
    from temzoo.errors import DataError
    from temzoo.validate import number

    try:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{name} must be a number, got {_show(value)}")
        return number(value, name, lo, hi, integer=integer, lo_open=lo_open)
    except DataError as err:
        raise ModelError(f"{where}: {err}") from None


def read_json_file(path: Path, what: str) -> Any:
    """A small checkpoint JSON file: bounded size, nesting bombs and bad text refused in one ModelError line."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelError(f"{path} is larger than {MAX_CONFIG_BYTES >> 10} kB; it is not a {what}")
        return json.loads(path.read_bytes())
    except RecursionError:
        raise ModelError(f"{path} is nested too deeply to be a {what}; restore it from the original checkpoint") \
            from None
    except (OSError, ValueError) as err:  # JSONDecodeError, UnicodeDecodeError
        raise ModelError(f"{path} is not valid JSON ({' '.join(str(err).split())[:120]}); restore it from the "
                         "original checkpoint") from None


def _known_timm_encoder(name: str) -> bool:
    """A ``tu-<timm model>`` encoder that timm knows (``timm:NAME`` bases and their fine-tunes use these; the
    parameter bound of :func:`check_weights_header` still applies, so a giant timm model is refused there)."""
    if not name.startswith("tu-") or len(name) > 100:
        return False
    import timm

    return bool(timm.is_model(name[3:]))


def spec_from_config(config: Any, where: str = CONFIG_FILE) -> ModelSpec:
    """The network ``config.json`` describes, checked before anything is built.

    An allowed architecture (:data:`ALLOWED_ARCHS`) and encoder (:data:`ALLOWED_ENCODERS`), encoder depth 1..5,
    one decoder channel count (1..:data:`MAX_DECODER_CHANNELS`) per stage, 1..4 input channels, 1..255 classes;
    anything else is one :class:`ModelError` naming the field.
    """
    if not isinstance(config, dict):
        raise ModelError(f"{where} must be a JSON object, got {type(config).__name__}; is this an smp checkpoint?")
    arch, enc = config.get("_model_class"), config.get("encoder_name")
    if arch not in ALLOWED_ARCHS:
        raise ModelError(f"{where}: _model_class {_show(arch)} is not an architecture temzoo loads "
                         f"({', '.join(ALLOWED_ARCHS)}); is this an smp checkpoint folder?")
    if not isinstance(enc, str) or not (enc in ALLOWED_ENCODERS or _known_timm_encoder(enc)):
        raise ModelError(f"{where}: encoder_name {_show(enc)} is not an encoder temzoo loads (allowed: resnet, "
                         "efficientnet b0-b4, convnext tiny/small, ... up to ResNet-101 size)")
    depth = int(_num(config.get("encoder_depth", 5), "encoder_depth", where, 1, 5, integer=True))
    dec = config.get("decoder_channels", (256, 128, 64, 32, 16))
    if not isinstance(dec, (list, tuple)) or len(dec) != depth:
        raise ModelError(f"{where}: decoder_channels must be a list of {depth} numbers (one per encoder stage), "
                         f"got {_show(dec)}")
    return ModelSpec(
        arch=arch,
        encoder_name=enc,
        encoder_depth=depth,
        decoder_channels=tuple(int(_num(c, "decoder_channels", where, 1, MAX_DECODER_CHANNELS, integer=True))
                               for c in dec),
        in_channels=int(_num(config.get("in_channels", 3), "in_channels", where, 1, 4, integer=True)),
        classes=int(_num(config.get("classes", 1), "classes", where, 1, 255, integer=True)),
    )


def read_meta(folder: str | Path) -> TemzooMeta:
    """``temzoo.json`` of a folder, validated (:func:`meta_from_dict`); a plain smp folder without one gets defaults
    (uncalibrated)."""
    p = Path(folder) / META_FILE
    if not p.exists():
        return TemzooMeta()
    return meta_from_dict(read_json_file(p, "temzoo.json"), str(p))


def meta_from_dict(d: Any, where: str = META_FILE) -> TemzooMeta:
    """A :class:`TemzooMeta` from untrusted JSON: every field type- and range-checked, one ModelError naming it.

    Unknown keys are ignored (a newer temzoo may add some); missing ones take their defaults.
    """
    if not isinstance(d, dict):
        raise ModelError(f"{where} must be a JSON object, got {type(d).__name__}; restore it from the original "
                         "checkpoint")
    known = {k: v for k, v in d.items() if k in TemzooMeta.__dataclass_fields__}
    if known.get("pixel_size_nm") is not None:
        from temzoo.errors import DataError
        from temzoo.io.units import check_pixel_size

        _num(known["pixel_size_nm"], "pixel_size_nm", where, 0, float("inf"), lo_open=True)
        try:
            known["pixel_size_nm"] = check_pixel_size(known["pixel_size_nm"], "pixel_size_nm")
        except DataError as err:
            raise ModelError(f"{where}: {err}") from None
    _check_choice(known, "task", TASKS, where)
    _check_strings(known, "class_names", where, 1, 256)
    if known.get("class_kinds") is not None:
        _check_strings(known, "class_kinds", where, 0, 255, CLASS_KINDS)
    known["normalization"] = _check_norm(known.get("normalization"), where)
    for name, lo, hi in (("tile_size", 16, 16384), ("receptive_field_px", 0, 10**6), ("format_version", 1, 10**6)):
        if name in known and (known[name] is not None or name != "receptive_field_px"):
            known[name] = int(_num(known[name], name, where, lo, hi, integer=True))
    if "input_downsample" in known:
        known["input_downsample"] = float(_num(known["input_downsample"], "input_downsample", where, 0, 1000,
                                               lo_open=True))
    for name, kind in (("description", str), ("provenance", dict)):
        if name in known and not isinstance(known[name], kind):
            raise ModelError(f"{where}: {name} must be a {'string' if kind is str else 'JSON object'}, "
                             f"got {_show(known[name])}")
    return TemzooMeta(**known)


def _check_choice(d: dict, name: str, choices: tuple[str, ...], where: str) -> None:
    if name in d and d[name] not in choices:
        raise ModelError(f"{where}: {name} must be one of {', '.join(choices)}, got {_show(d[name])}")


def _check_strings(d: dict, name: str, where: str, lo: int, hi: int, choices: tuple[str, ...] = ()) -> None:
    v = d.get(name)
    if name not in d:
        return
    if (not isinstance(v, list) or not lo <= len(v) <= hi or not all(isinstance(x, str) for x in v)
            or (choices and not set(v) <= set(choices))):
        want = f"of {'/'.join(choices)}" if choices else "of strings"
        raise ModelError(f"{where}: {name} must be a list of {lo}..{hi} {want}, got {_show(v)}")


def _check_norm(norm: Any, where: str) -> dict:
    """``normalization``: null/{} (defaults) or {"method": standardize|none, "clip_percentiles": [lo, hi]}."""
    if not norm:
        return Normalization().to_dict()
    if not isinstance(norm, dict):
        raise ModelError(f"{where}: normalization must be a JSON object, got {_show(norm)}")
    _check_choice(norm, "method", NORM_METHODS, where)
    clip = norm.get("clip_percentiles", [0.5, 99.5])
    if not isinstance(clip, (list, tuple)) or len(clip) != 2:
        raise ModelError(f"{where}: normalization clip_percentiles must be [low, high], got {_show(clip)}")
    lo, hi = (float(_num(c, "normalization clip_percentiles", where, 0, 100)) for c in clip)
    if lo >= hi:
        raise ModelError(f"{where}: normalization clip_percentiles must have low < high, got {_show(clip)}")
    return {**norm, "clip_percentiles": [lo, hi]}
