"""Natural-image encoders as bases (Ochoa et al.): ``timm:NAME`` as ``finetune --base``.

``timm:resnet18`` (or any timm model smp can use as a ``tu-`` encoder, optionally with a weight tag:
``timm:resnet34.a1_in1k``) resolves through timm's pretrained config to its Hugging Face repo (``timm/resnet18.a1_in1k``)
and downloads ``model.safetensors``, ``config.json`` and ``README.md`` from it into the HF cache: safetensors only;
a repo that offers only pickle weights (``pytorch_model.bin``) is refused. The U-Net is smp's (encoder ``tu-NAME``,
depth 5, a fresh decoder) built with ``encoder_weights=None``; timm loads the ImageNet weights into the encoder and
adapts its first convolution to one input channel (its ``adapt_input_conv``: the RGB kernels summed, as smp's
``patch_first_conv`` does). The base records its lineage (repo id, revision, licence) and that only its encoder is
pretrained, so fine-tuning keeps the encoder and starts decoder and head from the run's own initialisation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from temzoo.errors import ModelError
from temzoo.zoo.checkpoint import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, Checkpoint, ModelSpec, TemzooMeta

PREFIX = "timm:"
FILES = [WEIGHTS_FILE, CONFIG_FILE, CARD_FILE]  # never pytorch_model.bin
DECODER = (256, 128, 64, 32, 16)
TASK = "classification"  # what the base was trained for: fine-tuning replaces decoder and head
_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)?$")


@dataclass(frozen=True)
class TimmSource:
    """Where a ``timm:`` base comes from."""

    ref: str  # timm:resnet18
    name: str  # resnet18 or resnet18.a1_in1k (timm model name, with tag when given)
    architecture: str  # resnet18
    repo_id: str  # timm/resnet18.a1_in1k


def is_timm_ref(ref: object) -> bool:
    return isinstance(ref, str) and ref.strip().startswith(PREFIX)


def offline_message(ref: str) -> str:
    """The one line for a ``timm:`` base when the Hub cannot be reached (and it is not cached)."""
    from temzoo.zoo.registry import load_registry

    try:
        bundled = [e.id for e in load_registry() if e.bundled]
    except ModelError:
        bundled = []
    return (f"{ref} needs the Hugging Face Hub: connect, or pick a bundled base"
            + (f" ({', '.join(bundled)})" if bundled else ""))


def parse(ref: str) -> TimmSource:
    """``timm:NAME`` -> the timm architecture and its Hub repo (timm's ``pretrained_cfg.hf_hub_id``); no network."""
    import timm

    name = ref.strip()[len(PREFIX):].strip()
    if not _NAME.match(name):
        raise ModelError(f"{ref!r} is not a timm model name; write it as timm:NAME, e.g. timm:resnet18")
    arch = name.split(".")[0]
    if not timm.is_model(arch):
        raise ModelError(f"{ref}: timm has no model {arch!r}; pick one timm lists, e.g. timm:resnet18, "
                         "timm:resnet34 or timm:efficientnet_b0")
    try:
        cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=False)
    except RuntimeError:  # an unknown weight tag
        cfg = None
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id or "/" not in hub_id.strip("/"):
        raise ModelError(f"{ref}: timm has no Hugging Face weights for {name}; pick another tag or model")
    return TimmSource(ref=f"{PREFIX}{name}", name=name, architecture=arch, repo_id=hub_id.strip("/"))


def fetch(src: TimmSource, progress=None) -> Path:
    """The repo's safetensors weights, config and card in the HF cache (downloaded when not cached)."""
    from temzoo.zoo import hub, network

    if hub.cached_snapshot(src.repo_id) is None and not network.online():
        raise ModelError(offline_message(src.ref))
    folder = hub.fetch_snapshot(src.repo_id, progress=progress, allow_patterns=FILES)
    if not (folder / WEIGHTS_FILE).is_file():
        raise ModelError(f"{src.repo_id} offers no {WEIGHTS_FILE} (only pickle-format weights, which can run code "
                         "when loaded); temzoo loads safetensors only: pick another timm model")
    if progress:
        progress(1.0, "downloaded")
    return folder


def _licence(folder: Path) -> str | None:
    """The licence the repo's card (YAML header) or timm config states, or None."""
    from temzoo.zoo.cards import card_data

    card = folder / CARD_FILE
    lic = card_data(card.read_text(encoding="utf-8", errors="replace")).get("license") if card.is_file() else None
    if not lic:
        try:
            lic = (json.loads((folder / CONFIG_FILE).read_text()).get("pretrained_cfg") or {}).get("license")
        except (OSError, ValueError, AttributeError):
            lic = None
    return str(lic) if lic else None


def _check_config(src: TimmSource, folder: Path) -> None:
    """The repo's config.json must describe the architecture asked for (a mismatch would load nonsense)."""
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"{src.repo_id}: config.json is missing or not JSON ({err}); is it a timm repo?") from None
    arch = config.get("architecture") if isinstance(config, dict) else None
    if arch != src.architecture:
        raise ModelError(f"{src.repo_id}: its config.json describes {arch!r}, not {src.architecture!r}; "
                         "is it a timm repo for this model?")


def build(src: TimmSource, folder: Path):
    """smp U-Net ``tu-<arch>`` (fresh decoder) with the repo's ImageNet weights in its 1-channel encoder."""
    import timm
    from safetensors.torch import load_file

    spec = ModelSpec(encoder_name=f"tu-{src.architecture}", encoder_depth=5, decoder_channels=DECODER)
    try:
        model = spec.build()
    except Exception as err:  # noqa: BLE001 - smp refuses encoders it cannot use: one line
        raise ModelError(f"{src.ref}: smp cannot use {src.architecture} as a U-Net encoder "
                         f"({' '.join(str(err).split())[:120]}); pick a CNN such as timm:resnet18") from None
    state = load_file(str(folder / WEIGHTS_FILE), device="cpu")
    encoder = model.encoder.model
    try:
        # timm loads the (classification) state dict into the same feature extractor smp built and adapts the
        # first convolution to one channel (adapt_input_conv: RGB kernels summed); the weights come in as a dict
        # read by safetensors above, so timm never opens a file or the network itself.
        pretrained = timm.create_model(src.name, pretrained=True, features_only=True, in_chans=1,
                                       out_indices=tuple(encoder.feature_info.out_indices),
                                       pretrained_cfg_overlay={"state_dict": state})
        encoder.load_state_dict(pretrained.state_dict(), strict=True)
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        raise ModelError(f"{src.repo_id}: its weights do not fit timm's {src.architecture} "
                         f"({' '.join(str(err).split())[:160]})") from None
    return model.eval(), spec


def load(ref: str, progress=None) -> Checkpoint:
    """A ``timm:`` base as a :class:`Checkpoint` (task ``classification``: only the encoder is pretrained)."""
    src = parse(ref)
    folder = fetch(src, progress)
    _check_config(src, folder)
    model, spec = build(src, folder)
    step = {"model": src.repo_id, "task": "ImageNet classification (timm)", "revision": folder.name,
            "license": _licence(folder)}
    meta = TemzooMeta(
        task=TASK, class_names=["background", "foreground"],
        description=f"ImageNet-pretrained {src.architecture} encoder ({src.repo_id}), first convolution summed to "
                    "one channel, with a fresh U-Net decoder",
        provenance={"pretrained_parts": ["encoder"], "lineage": [{k: v for k, v in step.items() if v}],
                    "first_conv": "RGB kernels summed to one channel (timm adapt_input_conv)"},
    )
    return Checkpoint(model=model, meta=meta, spec=spec, path=folder, model_id=src.ref)
