"""The shared test every registered strategy runs through (as smp's tests/models/base.py): subclass it in
tests/test_strategies.py with the strategy's name and which parts must stay bit-identical after a short run."""

from __future__ import annotations

import json
from typing import ClassVar

import torch
from safetensors.torch import load_file

from temzoo.train import TrainConfig, train
from temzoo.train.config import STRATEGIES
from temzoo.train.strategies import Strategy, get_strategy
from temzoo.zoo import load_model
from temzoo.zoo.checkpoint import ModelSpec


def _state(folder):
    return load_file(str(folder / "model.safetensors"))


def _same(a, b, prefix):
    return {k: torch.equal(a[k], b[k]) for k in a if k.startswith(prefix)}


class StrategyTest:
    strategy: ClassVar[str]
    frozen: ClassVar[tuple[str, ...]] = ()  # parts ("encoder.", "decoder.") whose weights must not move
    trained: ClassVar[tuple[str, ...]] = ("decoder.",)  # parts that must move in one short epoch
    random_init: ClassVar[bool] = False
    bn_frozen: ClassVar[bool] = False  # pretrained BatchNorm statistics stay although the weights train

    def test_registered(self):
        kind = get_strategy(self.strategy)
        assert kind.name == self.strategy and self.strategy in STRATEGIES and kind.card_text
        assert kind.uses_base_weights is not self.random_init

    def test_penalty_matches_weight_decay(self):
        torch.manual_seed(0)
        s = Strategy(self.strategy, ModelSpec().build(), pretrained={n for n, _ in ModelSpec().build()
                                                                      .named_parameters()})
        pen = s.penalty()
        assert (pen is not None) == (not s.uses_weight_decay()) == get_strategy(self.strategy).penalised

    def test_end_to_end(self, disc_set, tmp_path, tiny_checkpoint):
        images, masks = disc_set
        cfg = TrainConfig(images=str(images), masks=str(masks), base=str(tiny_checkpoint), strategy=self.strategy,
                          epochs=1, steps_per_epoch=3, batch_size=2, tile_size=32, lr=3e-3, seed=0)
        result = train(cfg, tmp_path / "work")
        ck = load_model(str(result))  # a usable zoo folder
        assert ck.meta.provenance["strategy"] == self.strategy
        assert ck.meta.provenance["base_model"] == (None if self.random_init else str(tiny_checkpoint))
        lines = [json.loads(x) for x in (tmp_path / "work" / "metrics.jsonl").read_text().splitlines()]
        assert len(lines) == 1 and 0 <= lines[0]["val_f1"] <= 1
        base, new = _state(tiny_checkpoint), _state(tmp_path / "work" / "last")
        for part in self.frozen:
            assert all(_same(base, new, part).values()), f"{part} must be bit-identical under {self.strategy}"
        for part in self.trained:
            assert not all(_same(base, new, part).values()), f"{part} must train under {self.strategy}"
        if self.bn_frozen:
            stats = {k: v for k, v in _same(base, new, "encoder.").items() if "running_" in k}
            assert stats and all(stats.values())
        if self.random_init:
            enc = _same(base, new, "encoder.")
            assert not any(v for k, v in enc.items() if k.endswith("conv1.weight"))  # random init, not the base
