"""Strategies: every one trains end to end and freezes exactly what it says; L2 / L2-SP penalties behave."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from temzoo.train import TrainConfig, train
from temzoo.train.config import STRATEGIES
from temzoo.train.strategies import Strategy, encoder_stages, gradual_phase, trainable_names, trainable_parameters
from temzoo.zoo import load_model
from temzoo.zoo.checkpoint import ModelSpec
from tests.strategy_base import StrategyTest
from tests.trainsets import write_disc_set


@pytest.fixture(autouse=True)
def _one_thread():
    """Direct torch calls here use one thread (train() picks its own): OpenMP threads on a shared, busy machine
    run many times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def disc_set(tmp_path_factory):
    return write_disc_set(tmp_path_factory.mktemp("discs"), n=3, size=48)


def _run(disc_set, tmp_path, base, strategy, **kw):
    images, masks = disc_set
    cfg = TrainConfig(images=str(images), masks=str(masks), base=str(base), strategy=strategy,
                      pixel_size_nm=0.05, epochs=kw.pop("epochs", 1), steps_per_epoch=kw.pop("steps", 2),
                      batch_size=2, tile_size=32, lr=1e-2, seed=0, **kw)
    return train(cfg, tmp_path / "work")


def _state(folder):
    return load_file(str(folder / "model.safetensors"))


def _same(a, b, prefix):
    keys = [k for k in a if k.startswith(prefix) and a[k].is_floating_point()]
    assert keys
    return {k: torch.equal(a[k], b[k]) for k in keys}


def test_parameter_counts_per_strategy():
    m = ModelSpec().build()
    c = {s: trainable_parameters(m, s) for s in STRATEGIES}
    total = c["full"]["total"]
    assert all(c[s]["trainable"] == total for s in ("scratch", "full", "l2", "l2sp"))
    assert c["freeze-encoder"]["trainable"] == c["freeze-encoder"]["decoder_total"] + c["freeze-encoder"]["head_total"]
    assert c["freeze-encoder"]["encoder_trainable"] == 0 and c["freeze-decoder"]["decoder_trainable"] == 0
    assert c["freeze-decoder"]["trainable"] == total - c["freeze-decoder"]["decoder_total"]
    assert c["gradual"]["trainable"] == c["freeze-encoder"]["trainable"] and c["gradual"]["trainable_at_end"] == total
    assert c["freeze-encoder"]["fraction"] < 0.3  # most of this U-Net's parameters sit in the encoder
    assert all(p.requires_grad for p in m.parameters())  # counting never touches the model


def test_encoder_stages_and_gradual_schedule():
    m = ModelSpec().build()
    stages = encoder_stages(m)
    assert [n for n, _ in stages] == ["stem", "layer1", "layer2"]
    enc = {n for n, _ in m.named_parameters() if n.startswith("encoder.")}
    assert {p for _, ps in stages for p in ps} == enc
    assert [gradual_phase(3, p, 0, None) for p in (0.0, 0.19, 0.2, 0.45, 0.65, 0.99)] == [0, 0, 1, 2, 3, 3]
    assert [gradual_phase(3, 0.0, e, 2) for e in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]
    deepest = set(stages[-1][1])
    assert deepest <= trainable_names(m, "gradual", 1) and not set(stages[0][1]) & trainable_names(m, "gradual", 2)


class TestScratch(StrategyTest):
    strategy, random_init, trained = "scratch", True, ("encoder.", "decoder.")


class TestFreezeEncoder(StrategyTest):
    strategy, frozen = "freeze-encoder", ("encoder.",)  # weights and BatchNorm statistics


class TestFreezeDecoder(StrategyTest):
    strategy, frozen, trained = "freeze-decoder", ("decoder.",), ("encoder.",)


class TestGradual(StrategyTest):
    strategy, frozen = "gradual", ("encoder.",)  # one short epoch: still in the head/decoder phase


class TestFull(StrategyTest):
    strategy, trained, bn_frozen = "full", ("encoder.", "decoder."), True  # batch 2 < 8


class TestL2(StrategyTest):
    strategy, trained, bn_frozen = "l2", ("encoder.", "decoder."), True


class TestL2SP(StrategyTest):
    strategy, trained, bn_frozen = "l2sp", ("encoder.", "decoder."), True


def test_every_strategy_has_its_test_and_the_registry_is_the_list():
    from temzoo.train.strategies import registered_strategies

    assert registered_strategies() == STRATEGIES
    tested = {c.strategy for c in StrategyTest.__subclasses__()}
    assert tested == set(STRATEGIES)


def test_gradual_unfreezes_deepest_first(disc_set, tmp_path, tiny_checkpoint):
    _run(disc_set, tmp_path, tiny_checkpoint, "gradual", epochs=2, unfreeze_every=1, patience=0)
    base, new = _state(tiny_checkpoint), _state(tmp_path / "work" / "last")  # the last epoch, not the best
    # epoch 1: phase 0 (encoder frozen); epoch 2: phase 1 (layer2, the deepest stage, unfrozen)
    assert all(_same(base, new, "encoder.model.conv1.").values())
    assert all(_same(base, new, "encoder.model.layer1.").values())
    assert not all(_same(base, new, "encoder.model.layer2.").values())
    assert "phase 1/3" in (tmp_path / "work" / "train.log").read_text()


def test_full_with_large_batch_updates_batchnorm_statistics(disc_set, tmp_path, tiny_checkpoint):
    result = _run(disc_set, tmp_path, tiny_checkpoint, "full", freeze_bn_below=1)
    stats = {k: v for k, v in _same(_state(tiny_checkpoint), _state(result), "encoder.").items() if "running_mean" in k}
    assert not any(stats.values())


def _pretrained_model():
    torch.manual_seed(0)
    m = ModelSpec().build()
    return m, {n for n, _ in m.named_parameters()}


def test_l2sp_penalty_zero_at_w0_positive_after_and_pulls_back():
    m, names = _pretrained_model()
    s = Strategy("l2sp", m, pretrained=names, l2sp_alpha=1.0, l2sp_beta=0.0)
    assert float(s.penalty().detach()) == 0.0
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.01)
    pen = float(s.penalty().detach())
    kernels = sum(p.numel() for p in m.parameters() if p.ndim > 1)
    assert pen == pytest.approx(0.5 * kernels * 0.01**2, rel=1e-3)
    # descending on the penalty alone moves the weights back toward w0
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        s.penalty().backward()
        opt.step()
    assert float(s.penalty().detach()) < 0.2 * pen


def test_l2sp_new_layers_use_beta():
    m, names = _pretrained_model()
    head = {n for n in names if n.startswith("segmentation_head.")}
    s = Strategy("l2sp", m, pretrained=names - head, l2sp_alpha=1.0, l2sp_beta=2.0)
    w = m.segmentation_head[0].weight
    assert float(s.penalty().detach()) == pytest.approx(float(w.detach().pow(2).sum()), rel=1e-5)  # beta/2 * ||w_new||^2


def test_l2sp_keeps_weights_closer_to_w0_than_full():
    torch.manual_seed(1)
    x = torch.randn(2, 1, 32, 32)
    y = (torch.rand(2, 1, 32, 32) > 0.5).float()
    dist = {}
    for name in ("full", "l2sp"):
        m, names = _pretrained_model()
        w0 = {n: p.detach().clone() for n, p in m.named_parameters()}
        s = Strategy(name, m, pretrained=names, l2sp_alpha=5.0, batch_size=2)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.0)
        s.train_mode()
        for _ in range(4):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(m(x), y)
            pen = s.penalty()
            opt.zero_grad()
            (loss + pen if pen is not None else loss).backward()
            opt.step()
        dist[name] = sum(float((p.detach() - w0[n]).pow(2).sum()) for n, p in m.named_parameters() if p.ndim > 1)
    assert dist["l2sp"] < dist["full"]


def test_l2_penalises_decoder_and_head_only():
    m, names = _pretrained_model()
    s = Strategy("l2", m, pretrained=names, l2_lambda=0.1)
    expect = 0.1 * sum(float(p.detach().pow(2).sum()) for n, p in m.named_parameters()
                       if p.ndim > 1 and not n.startswith("encoder."))
    assert float(s.penalty().detach()) == pytest.approx(expect, rel=1e-5)
    with torch.no_grad():
        m.encoder.model.conv1.weight.mul_(10)  # the pretrained encoder is not penalised
    assert float(s.penalty().detach()) == pytest.approx(expect, rel=1e-5)
    assert not s.uses_weight_decay() and Strategy("full", m).uses_weight_decay()


def test_strategies_for_pretrained_weights_are_refused_from_scratch():
    """#14.4: the registry owns validity: exactly these need a pretrained base; TrainConfig.validate asks it."""
    from temzoo.errors import TemzooError
    from temzoo.train.config import TrainConfig
    from temzoo.train.strategies import get_strategy, registered_strategies

    need = {s for s in registered_strategies() if get_strategy(s).needs_pretrained}
    assert need == {"freeze-encoder", "freeze-decoder", "l2", "l2sp", "gradual"}
    for s in registered_strategies():
        cfg = TrainConfig(images="i", masks="m", base="scratch", strategy=s)
        if s in need:
            with pytest.raises(TemzooError, match="needs a pretrained base, not scratch"):
                cfg.validate()
        else:
            cfg.validate()
        TrainConfig(images="i", masks="m", base="hrtem-nanoparticle", strategy=s).validate()
