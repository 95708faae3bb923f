"""Transfer-learning strategies: which parameters train, which BatchNorm statistics move, which penalty applies.

- ``scratch``: random initialisation, everything trains.
- ``freeze-encoder``: the encoder is fixed (weights and BatchNorm statistics); decoder and head train.
  Rangel DaCosta et al.: ~80 % fewer trainable parameters, slightly worse than full fine-tuning.
- ``freeze-decoder``: the decoder is fixed; encoder and head train (about as good as full, same paper).
- ``full``: deep fine-tuning (Ochoa et al.): everything trains, but BatchNorm statistics of pretrained layers stay
  frozen when batches are small (a batch of 2-4 tiles gives noisy statistics that would wreck the pretrained ones).
- ``gradual``: head and decoder first, then encoder stages are unfrozen deepest-first over the budget
  ("freeze large parts first, unfreeze as needed").
- ``l2`` (Ochoa et al.): full fine-tuning + ``lambda * sum(w^2)`` on decoder and head kernels (new layers);
  the pretrained encoder is not penalised.
- ``l2sp`` (Li et al. 2018): ``alpha/2 ||w - w0||^2`` over pretrained kernels + ``beta/2 ||w||^2`` over new ones.
  Penalties act on weight tensors (convolution kernels), not on biases or normalisation parameters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from temzoo.errors import TemzooError

PARTS = ("encoder", "decoder", "head")
_STAGE_CONTAINERS = {"blocks", "stages", "layers", "features", "stages_"}
_NORM_TYPES = (nn.modules.batchnorm._BatchNorm,)
_STAGE_NAME = re.compile(r"^(layer|block|stage|features)")


def part_of(name: str) -> str:
    """Which part a parameter/module name belongs to: encoder, decoder or head."""
    if name.startswith("encoder."):
        return "encoder"
    if name.startswith("decoder."):
        return "decoder"
    return "head"  # segmentation_head, classification_head


def encoder_stages(model: nn.Module) -> list[tuple[str, list[str]]]:
    """Encoder parameter names grouped into stages, shallowest first (the stem is stage 0).

    Works for smp's native encoders (``encoder.layer1``...) and timm universal ones (``encoder.model.layer1``,
    ``encoder.model.blocks.3``...): top-level children in registration order, stage containers expanded.
    """
    enc = model.encoder
    inner, prefix = (enc.model, "encoder.model.") if hasattr(enc, "model") and isinstance(enc.model, nn.Module) \
        else (enc, "encoder.")
    units: list[tuple[str, nn.Module]] = []
    for name, child in inner.named_children():
        if name in _STAGE_CONTAINERS and isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
            units += [(f"{name}.{n}", c) for n, c in child.named_children()]
        else:
            units.append((name, child))
    stages: list[tuple[str, list[str]]] = []
    stem: list[str] = []
    for name, child in units:
        params = [f"{prefix}{name}.{n}" for n, _ in child.named_parameters()]
        if not params:
            continue
        # Convolutions/norms before the first block (layer1, blocks.0, stages.0 ...) form the stem.
        if not stages and not _STAGE_NAME.match(name):
            stem += params
            continue
        if stem and not stages:
            stages.append(("stem", stem))
        stages.append((name, params))
    if stem and not stages:
        stages.append(("stem", stem))
    # Anything the walk missed (e.g. encoder-level params outside ``model``) joins the stem.
    seen = {p for _, ps in stages for p in ps}
    rest = [n for n, _ in model.named_parameters() if n.startswith("encoder.") and n not in seen]
    if rest:
        stages.insert(0, ("stem", rest + (stages.pop(0)[1] if stages and stages[0][0] == "stem" else [])))
    return stages


def gradual_phase(n_stages: int, progress: float, epoch: int, unfreeze_every: int | None) -> int:
    """How many encoder stages (deepest first) are unfrozen at this point of the run (0..n_stages)."""
    if unfreeze_every:
        return min(n_stages, epoch // unfreeze_every)
    if progress < 0.2:
        return 0
    return min(n_stages, 1 + int(math.floor((progress - 0.2) / 0.6 * n_stages)))


# ------------------------------------------------------------------------------------------------ registry
_REGISTRY: dict[str, type[StrategyKind]] = {}


def register_strategy(cls: type[StrategyKind]) -> type[StrategyKind]:
    """Class decorator (as timm's ``register_model``): make the strategy available under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"strategy {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_strategy(name: str) -> StrategyKind:
    """The registered strategy called ``name``; an unknown name is a one-line error listing the known ones."""
    if name not in _REGISTRY:
        raise TemzooError(f"unknown strategy {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]()


def registered_strategies() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def check_base(strategy: str, base: str) -> None:
    """One-line :class:`TemzooError` when ``strategy`` needs pretrained weights and ``base`` is "scratch"."""
    if base == "scratch" and get_strategy(strategy).needs_pretrained:
        ok = ", ".join(n for n, c in _REGISTRY.items() if not c.needs_pretrained)
        raise TemzooError(f"strategy {strategy!r} needs a pretrained base, not scratch: pick a zoo model as the base, "
                          f"or use {ok}")


class StrategyKind:
    """One transfer-learning strategy: which parameters train, its regulariser, its card text and its validity."""

    name: ClassVar[str]
    card_text: ClassVar[str]  # one line for model cards and help
    uses_base_weights: ClassVar[bool] = True  # False: random initialisation (the base only gives the architecture)
    penalised: ClassVar[bool] = False  # an explicit penalty, which replaces AdamW's decoupled weight decay
    citation: ClassVar[str | None] = None  # key of temzoo.zoo.cards.CITATIONS cited beside the defaults
    staged: ClassVar[bool] = False  # unfreezes encoder stages over the run (phase > 0)
    anchored: ClassVar[bool] = False  # keeps a copy of the pretrained kernels (the penalty pulls towards it)
    # Meaningless from random weights (a frozen random part, a pull towards random kernels, stages unfrozen over
    # nothing learnt): refused when the base is "scratch" (TrainConfig.validate, so the app and the CLI alike).
    needs_pretrained: ClassVar[bool] = False

    def trainable(self, model: nn.Module, names: list[str], phase: int) -> set[str]:
        return set(names)

    def phase(self, n_stages: int, progress: float, epoch: int, unfreeze_every: int | None) -> int:
        return 0

    def penalty(self, strat: Strategy) -> torch.Tensor | None:
        return None


@register_strategy
class Scratch(StrategyKind):
    name = "scratch"
    card_text = "trained from random initialisation; everything trains"
    uses_base_weights = False


class _FreezePart(StrategyKind):
    """One part of the network (``part``) stays fixed; the others train."""

    part: ClassVar[str]
    needs_pretrained = True

    def trainable(self, model: nn.Module, names: list[str], phase: int) -> set[str]:
        return {n for n in names if part_of(n) != self.part}


@register_strategy
class FreezeEncoder(_FreezePart):
    name, part = "freeze-encoder", "encoder"
    card_text = "the pretrained encoder is fixed (weights and BatchNorm statistics); decoder and head train"


@register_strategy
class FreezeDecoder(_FreezePart):
    name, part = "freeze-decoder", "decoder"
    card_text = "the pretrained decoder is fixed; encoder and head train"


@register_strategy
class Full(StrategyKind):
    name = "full"
    card_text = "deep fine-tuning: everything trains, pretrained BatchNorm statistics frozen for small batches"


@register_strategy
class Gradual(StrategyKind):
    name = "gradual"
    card_text = "head and decoder first, then encoder stages unfrozen deepest-first over the budget"
    citation = "l2"
    staged = True
    needs_pretrained = True

    def trainable(self, model: nn.Module, names: list[str], phase: int) -> set[str]:
        stages = encoder_stages(model)
        open_ = {p for _, ps in stages[len(stages) - phase:] for p in ps} if phase > 0 else set()
        return {n for n in names if part_of(n) != "encoder" or n in open_}

    def phase(self, n_stages: int, progress: float, epoch: int, unfreeze_every: int | None) -> int:
        return gradual_phase(n_stages, progress, epoch, unfreeze_every)


@register_strategy
class L2(StrategyKind):
    name = "l2"
    card_text = "full fine-tuning + an L2 penalty on the decoder and head kernels (Ochoa et al.)"
    penalised = True
    citation = "l2"
    needs_pretrained = True

    def penalty(self, strat: Strategy) -> torch.Tensor | None:
        terms = [p.float().pow(2).sum() for n, p in strat.model.named_parameters()
                 if part_of(n) != "encoder" and _is_kernel(n, p) and p.requires_grad]
        return strat.l2_lambda * torch.stack(terms).sum() if terms else None


@register_strategy
class L2SP(StrategyKind):
    name = "l2sp"
    card_text = "L2-SP: pretrained kernels pulled towards their starting values, new ones towards 0 (Li et al.)"
    penalised = True
    citation = "l2"
    anchored = True
    needs_pretrained = True

    def penalty(self, strat: Strategy) -> torch.Tensor | None:
        sp, new = [], []
        for n, p in strat.model.named_parameters():
            if not _is_kernel(n, p) or not p.requires_grad:
                continue
            if n in strat._w0:
                w0 = strat._w0[n]
                if w0.device != p.device:
                    w0 = strat._w0[n] = w0.to(p.device)
                sp.append((p.float() - w0.float()).pow(2).sum())
            else:
                new.append(p.float().pow(2).sum())
        total = None
        if sp:
            total = 0.5 * strat.l2sp_alpha * torch.stack(sp).sum()
        if new:
            t = 0.5 * strat.l2sp_beta * torch.stack(new).sum()
            total = t if total is None else total + t
        return total


def trainable_names(model: nn.Module, strategy: str, phase: int = 0) -> set[str]:
    """Parameter names that train under ``strategy`` (``phase``: unfrozen encoder stages for ``gradual``)."""
    return get_strategy(strategy).trainable(model, [n for n, _ in model.named_parameters()], phase)


def trainable_parameters(model: nn.Module, strategy: str) -> dict:
    """Parameter counts under ``strategy``: trainable/total overall and per part (for the teaching pages).

    Does not modify the model. For ``gradual`` the counts are those of the first phase; ``trainable_at_end`` is
    the count once every stage is unfrozen.
    """
    train = trainable_names(model, strategy, phase=0)
    counts = {"strategy": strategy, "total": 0, "trainable": 0}
    for part in PARTS:
        counts[f"{part}_total"] = 0
        counts[f"{part}_trainable"] = 0
    for n, p in model.named_parameters():
        k = p.numel()
        part = part_of(n)
        counts["total"] += k
        counts[f"{part}_total"] += k
        if n in train:
            counts["trainable"] += k
            counts[f"{part}_trainable"] += k
    counts["fraction"] = counts["trainable"] / max(1, counts["total"])
    if get_strategy(strategy).staged:
        counts["trainable_at_end"] = counts["total"]
        counts["stages"] = [name for name, _ in encoder_stages(model)]
    return counts


def _is_kernel(name: str, p: torch.Tensor) -> bool:
    return p.ndim > 1  # conv/linear weights; biases and norm parameters are 1-D


@dataclass
class Strategy:
    """A strategy bound to one model: applies freezing, sets train/eval modes, computes the penalty."""

    name: str
    model: nn.Module
    pretrained: set[str] = field(default_factory=set)  # parameter names loaded from the base (not reinitialised)
    batch_size: int = 4
    freeze_bn_below: int = 8
    l2_lambda: float = 1e-4
    l2sp_alpha: float = 1e-2
    l2sp_beta: float = 1e-4
    unfreeze_every: int | None = None
    phase: int = 0
    _w0: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.kind = get_strategy(self.name)
        self.n_stages = len(encoder_stages(self.model))
        if self.kind.anchored:
            # The anchor w0: a detached copy of the pretrained kernels at the start of fine-tuning.
            self._w0 = {n: p.detach().clone() for n, p in self.model.named_parameters()
                        if n in self.pretrained and _is_kernel(n, p)}
        self.apply(progress=0.0, epoch=0)

    # -------------------------------------------------------------------------------------------- freezing
    def apply(self, progress: float, epoch: int) -> bool:
        """Set ``requires_grad`` for this point of the run; True when the set of trainable parameters changed."""
        self.phase = self.kind.phase(self.n_stages, progress, epoch, self.unfreeze_every)
        train = trainable_names(self.model, self.name, self.phase)
        changed = False
        for n, p in self.model.named_parameters():
            want = n in train
            if p.requires_grad != want:
                p.requires_grad_(want)
                changed = True
        return changed

    def frozen_bn_prefixes(self) -> list[str]:
        """Module names whose BatchNorm statistics must not move."""
        frozen = []
        small = self.batch_size < self.freeze_bn_below
        trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        for mname, m in self.model.named_modules():
            if not isinstance(m, _NORM_TYPES):
                continue
            pnames = [f"{mname}.{n}" for n, _ in m.named_parameters()]
            fixed = bool(pnames) and not any(p in trainable for p in pnames)
            pre = bool(pnames) and all(p in self.pretrained for p in pnames)
            if fixed or (small and pre):
                frozen.append(mname)
        return frozen

    def train_mode(self) -> None:
        """``model.train()``, except BatchNorm layers that are frozen (or pretrained with small batches): eval."""
        self.model.train()
        frozen = set(self.frozen_bn_prefixes())
        for mname, m in self.model.named_modules():
            if mname in frozen:
                m.eval()

    # --------------------------------------------------------------------------------------------- penalty
    def penalty(self) -> torch.Tensor | None:
        """The strategy's regulariser (None when it has none)."""
        return self.kind.penalty(self)

    def uses_weight_decay(self) -> bool:
        """Explicit penalties replace AdamW's decoupled decay (otherwise the weights would be pulled twice)."""
        return not self.kind.penalised

    def describe(self) -> str:
        n_train = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in self.model.parameters())
        extra = f", phase {self.phase}/{self.n_stages}" if self.kind.staged else ""
        return f"{self.name}: {n_train:,} of {n_all:,} parameters trainable{extra}"
