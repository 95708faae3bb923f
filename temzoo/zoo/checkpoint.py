"""Checkpoint folders in segmentation-models-pytorch's Hub layout plus ``temzoo.json``.

A folder holds ``config.json`` (smp init args + ``_model_class``), ``model.safetensors``, ``README.md`` (the card)
and ``temzoo.json`` (:class:`TemzooMeta`: what TEM needs and smp does not carry). Plain
``smp.from_pretrained(folder)`` loads it; :func:`load_checkpoint` adds the metadata and the safety checks.
Saving is atomic: the folder appears complete or not at all.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temzoo.errors import ModelError
# The folder's metadata lives in temzoo.zoo.meta (cards reads it too); re-exported as the checkpoint API.
from temzoo.zoo.meta import (  # noqa: F401
    CARD_FILE,
    CONFIG_FILE,
    META_FILE,
    PICKLE_SUFFIXES,
    WEIGHTS_FILE,
    ModelSpec,
    TemzooMeta,
    read_json_file,
    read_meta,
    spec_from_config,
)


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


def save_checkpoint(model, folder: str | Path, meta: TemzooMeta, card: str | None = None) -> Path:
    """Write ``model`` + ``meta`` (+ card text) to ``folder`` atomically and return the folder.

    Everything is written into a temporary sibling folder that replaces ``folder`` in one rename, so a crash or a
    full disk never leaves a half-written checkpoint. The model is not modified (a CPU copy of the weights is saved).
    """
    from temzoo.io.outputs import swap_in

    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not (folder / CONFIG_FILE).is_file():
        raise ModelError(f"{folder} is not empty and is not a checkpoint; temzoo never replaces other files: "
                         "give a new folder")
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
        swap_in(tmp, folder)
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


def _require_regular_files(folder: Path) -> None:
    """Refuse a checkpoint whose files are FIFOs, devices or folders: opening a FIFO would block forever."""
    from temzoo.errors import ReadError
    from temzoo.io.untrusted import require_regular, shown

    for name in (CONFIG_FILE, WEIGHTS_FILE, META_FILE):
        if not os.path.lexists(folder / name):
            continue
        try:
            st = require_regular(folder / name, "checkpoint file")
        except ReadError as err:
            raise ModelError(str(err)) from None
        if not stat.S_ISREG(st.st_mode):
            raise ModelError(f"{shown(folder / name)} is a folder, not a checkpoint file")


def load_checkpoint(folder: str | Path, model_id: str = "") -> Checkpoint:
    """Load a checkpoint folder: safetensors only, no remote code, model in eval mode on the CPU.

    Untrusted folders are checked before anything large is allocated: ``config.json`` and ``temzoo.json`` are
    validated field by field, the architecture is built on PyTorch's ``meta`` device (no memory) and its parameter
    shapes must match the ones the safetensors header declares, then the weights are loaded and must be finite.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"checkpoint folder {folder} does not exist; check the path or run 'python -m temzoo zoo list'")
    refuse_pickles(folder)
    if not (folder / WEIGHTS_FILE).exists() or not (folder / CONFIG_FILE).exists():
        raise ModelError(f"{folder} is not a checkpoint: it needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    _require_regular_files(folder)
    spec = spec_from_config(read_json_file(folder / CONFIG_FILE, "config.json"), str(folder / CONFIG_FILE))
    meta = read_meta(folder)
    check_weights_header(spec, folder / WEIGHTS_FILE)
    try:
        from safetensors.torch import load_file

        model = spec.build()
        state = load_file(str(folder / WEIGHTS_FILE), device="cpu")
        _require_finite(state, folder / WEIGHTS_FILE)
        model.load_state_dict(state, strict=True)
    except ModelError:
        raise
    except Exception as err:  # noqa: BLE001 - corrupt/mismatched weights: say so in one line
        msg = " ".join(str(err).split())[:200]
        raise ModelError(f"could not load weights from {folder}: {msg}") from None
    model.eval()
    return Checkpoint(model=model, meta=meta, spec=spec, path=folder, model_id=model_id or folder.name)


MAX_PARAMS = 150_000_000  # 600 MB of float32; the largest allowed encoder's U-Net is about a third of it


def header_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the safetensors header alone (nothing else of the file is read)."""
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt", device="cpu") as f:
            return {k: tuple(int(n) for n in f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - truncated, bit-flipped or not safetensors at all
        raise ModelError(f"could not load weights from {weights.parent}: {weights.name} is not a readable "
                         f"safetensors file ({' '.join(str(err).split())[:120]}); download or copy it again") from None


def check_weights_header(spec: ModelSpec, weights: Path) -> None:
    """Refuse, before building anything real, a network larger than :data:`MAX_PARAMS` or one whose parameter
    names and shapes differ from those the weights file declares (the network is built on the ``meta`` device)."""
    import torch

    declared = header_shapes(weights)
    try:
        with torch.device("meta"):
            wanted = {k: tuple(v.shape) for k, v in spec.build().state_dict().items()}
    except Exception as err:  # noqa: BLE001 - smp refuses some combinations (e.g. depth vs encoder)
        raise ModelError(f"config.json describes a network smp cannot build ({' '.join(str(err).split())[:120]})") \
            from None
    n_params = sum(math.prod(s) for s in wanted.values())
    if n_params > MAX_PARAMS:
        raise ModelError(f"config.json describes a {n_params / 1e6:.0f} M-parameter network, more than temzoo loads "
                         f"({MAX_PARAMS / 1e6:.0f} M); the checkpoint is corrupt or not meant for temzoo")
    missing = sorted(set(wanted) - set(declared))
    extra = sorted(set(declared) - set(wanted))
    wrong = sorted(k for k in set(wanted) & set(declared) if wanted[k] != declared[k])
    if missing or extra or wrong:
        what = (f"{wrong[0]} is {declared[wrong[0]]} in the weights but {wanted[wrong[0]]} in config.json" if wrong
                else f"{missing[0]} is missing from the weights" if missing else f"{extra[0]} is not in config.json")
        raise ModelError(f"{weights} does not match its config.json ({len(missing) + len(extra) + len(wrong)} "
                         f"tensors differ; {what}); the folder mixes files of different checkpoints or is corrupt")


def store_float16(folder: str | Path) -> None:
    """Rewrite a checkpoint's floating-point weights as float16, in place and atomically: half the bytes of a
    shipped checkpoint (the bundled large net is 57 MB in float32). Loading is unchanged: ``load_state_dict``
    copies float16 tensors into the float32 network (temzoo and plain ``smp.from_pretrained`` alike).

    Refuses weights that float16 cannot hold (any magnitude above its 65504 maximum would become inf)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    weights = Path(folder) / WEIGHTS_FILE
    with safe_open(str(weights), framework="pt", device="cpu") as f:
        metadata = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    too_big = [k for k, t in state.items() if t.is_floating_point() and float(t.abs().max()) > 65504]
    if too_big:
        raise ModelError(f"{weights} holds values beyond float16's range in {too_big[0]}; keep it in float32")
    half = {k: (t.to(torch.float16) if t.is_floating_point() else t).contiguous() for k, t in state.items()}
    tmp = weights.with_name(f".{WEIGHTS_FILE}.half")
    try:
        save_file(half, str(tmp), metadata=metadata)
        os.replace(tmp, weights)
    finally:
        tmp.unlink(missing_ok=True)


def _require_finite(state: dict, weights: Path) -> None:
    """Refuse NaN/inf weights: such a network predicts an empty (meaningless) mask with no other sign."""
    import torch

    bad = [k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ModelError(f"{weights} holds non-finite weights (NaN or inf) in {len(bad)} tensors, e.g. {bad[0]}; "
                         "the training diverged or the file is corrupt: use another checkpoint")
