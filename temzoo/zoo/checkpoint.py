"""Checkpoint folders in segmentation-models-pytorch's Hub layout plus ``temzoo.json``.

A folder holds ``config.json`` (smp init args + ``_model_class``), ``model.safetensors``, ``README.md`` (the card)
and ``temzoo.json`` (:class:`TemzooMeta`: what TEM needs and smp does not carry). Plain
``smp.from_pretrained(folder)`` loads it; :func:`load_checkpoint` adds the metadata and the safety checks.
Saving is atomic: the folder appears complete or not at all.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from temzoo.errors import ModelError
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
    description: str = ""
    # base_model, training_data, data_hash, strategy, metrics, versions, created, lineage ...
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = 1

    @property
    def norm(self) -> Normalization:
        return Normalization.from_dict(self.normalization)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> TemzooMeta:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Checkpoint:
    """A loaded model with its metadata. ``model`` is in eval mode on the CPU."""

    model: Any
    meta: TemzooMeta
    spec: ModelSpec
    path: Path | None = None
    model_id: str = ""


def versions() -> dict[str, str]:
    """Library versions recorded in provenance."""
    import segmentation_models_pytorch as smp
    import torch

    import temzoo

    return {"temzoo": temzoo.__version__, "torch": torch.__version__, "segmentation_models_pytorch": smp.__version__}


def refuse_pickles(folder: Path) -> None:
    """Raise if the folder holds pickle-format weights (they can run code when loaded)."""
    bad = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if bad:
        raise ModelError(
            f"{folder} holds pickle-format weights ({', '.join(bad)}), which can run code when loaded; "
            "temzoo loads only model.safetensors: convert it with safetensors or remove those files"
        )


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


def save_checkpoint(model, folder: str | Path, meta: TemzooMeta, card: str | None = None) -> Path:
    """Write ``model`` + ``meta`` (+ card text) to ``folder`` atomically and return the folder.

    Everything is written into a temporary sibling folder that replaces ``folder`` in one rename, so a crash or a
    full disk never leaves a half-written checkpoint. The model is not modified (a CPU copy of the weights is saved).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        # smp's own writer: config.json with _model_class and init args, model.safetensors.
        model.save_pretrained(tmp)
        config = json.loads((tmp / CONFIG_FILE).read_text())
        if config.get("encoder_weights") is not None:
            config["encoder_weights"] = None  # loading must never download ImageNet weights
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        (tmp / META_FILE).write_text(meta.to_json())
        if card is None:
            card = _default_card(model, meta, config, folder.name)
        if card is not None:
            (tmp / CARD_FILE).write_text(card)
        _replace_dir(tmp, folder)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"could not write checkpoint to {folder}: {err.strerror or err}; free space or pick another folder") from None
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(err):  # safetensors raises its own SafetensorError for I/O failures
            raise ModelError(f"could not write checkpoint to {folder}: disk full; free space or pick another folder") \
                from None
        raise
    return folder


def is_disk_full(err: BaseException) -> bool:
    """ENOSPC, raised as OSError or wrapped by a library (safetensors: "No space left on device (os error 28)")."""
    if isinstance(err, OSError):
        return err.errno == errno.ENOSPC
    text = str(err)
    return "No space left on device" in text or "os error 28" in text


def _default_card(model, meta: TemzooMeta, config: dict, name: str) -> str | None:
    """A temzoo model card (``temzoo.zoo.cards.render_card``) in place of smp's generic README.

    A card that cannot be rendered must never cost the trained weights: then smp's own README stays.
    """
    try:
        from temzoo.zoo.cards import render_card

        params = sum(p.numel() for p in model.parameters())
        return render_card(meta, spec_from_config(config), model_id=name, params=params)
    except Exception:  # noqa: BLE001 - see docstring
        return None


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is swapped out first and removed after."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_meta(folder: str | Path) -> TemzooMeta:
    """``temzoo.json`` of a folder; a plain smp folder without one gets defaults (uncalibrated)."""
    p = Path(folder) / META_FILE
    if not p.exists():
        return TemzooMeta()
    try:
        return TemzooMeta.from_dict(json.loads(p.read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise ModelError(f"{p} is not valid JSON ({err}); restore it from the original checkpoint") from None


def load_checkpoint(folder: str | Path, model_id: str = "") -> Checkpoint:
    """Load a checkpoint folder: safetensors only, no remote code, model in eval mode on the CPU."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"checkpoint folder {folder} does not exist; check the path or run 'python -m temzoo zoo list'")
    refuse_pickles(folder)
    if not (folder / WEIGHTS_FILE).exists() or not (folder / CONFIG_FILE).exists():
        raise ModelError(f"{folder} is not a checkpoint: it needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except json.JSONDecodeError as err:
        raise ModelError(f"{folder / CONFIG_FILE} is not valid JSON ({err})") from None
    spec = spec_from_config(config)
    meta = read_meta(folder)
    try:
        from safetensors.torch import load_file

        model = spec.build()
        state = load_file(str(folder / WEIGHTS_FILE), device="cpu")
        model.load_state_dict(state, strict=True)
    except ModelError:
        raise
    except Exception as err:  # noqa: BLE001 - corrupt/mismatched weights: say so in one line
        msg = " ".join(str(err).split())[:200]
        raise ModelError(f"could not load weights from {folder}: {msg}") from None
    model.eval()
    return Checkpoint(model=model, meta=meta, spec=spec, path=folder, model_id=model_id or folder.name)
