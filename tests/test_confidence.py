"""Confidence maths (entropy, calibration, ECE) and the MC-dropout hook / ensemble on a real tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from temzoo.confidence import (
    apply_temperature,
    combine_members,
    entropy,
    fit_temperature,
    max_probability,
    mc_dropout,
    reliability,
)
from temzoo.errors import DataError
from temzoo.predict import ensemble_predict
from temzoo.types import Micrograph
from temzoo.zoo.checkpoint import ModelSpec, TemzooMeta, load_checkpoint, save_checkpoint


def test_entropy_and_max_probability():
    p = np.array([[0.5, 0.0], [1.0, 0.9]], np.float32)
    e = entropy(p)
    assert e[0, 0] == pytest.approx(np.log(2), rel=1e-4) and e[0, 1] < 1e-4 and e[1, 0] < 1e-4
    np.testing.assert_allclose(max_probability(p), [[0.5, 1.0], [1.0, 0.9]])
    three = np.stack([np.full((2, 2), 1 / 3)] * 3).astype(np.float32)
    assert entropy(three)[0, 0] == pytest.approx(np.log(3), rel=1e-4)


def _synthetic(t_true: float, n: int = 200_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 4, n)
    y = rng.random(n) < 1 / (1 + np.exp(-z / t_true))  # labels drawn from sigmoid(z / T)
    p = 1 / (1 + np.exp(-z))  # an overconfident model reports sigmoid(z)
    return p.reshape(400, -1).astype(np.float32), y.reshape(400, -1).astype(np.uint8)


def test_temperature_fit_recovers_true_temperature_and_lowers_ece():
    p, y = _synthetic(2.5)
    t = fit_temperature(p, y)
    assert t == pytest.approx(2.5, rel=0.08)
    before = reliability(p, y).ece
    after = reliability(apply_temperature(p, t), y).ece
    assert before > 0.05 and after < 0.02 and after < before / 3


def test_reliability_bins_and_perfect_calibration():
    p, y = _synthetic(1.0)
    rel = reliability(p, y)
    assert rel.ece < 0.01 and rel.count.sum() == p.size
    assert rel.bin_edges[0] == 0.5 and len(rel.accuracy) == 15
    with pytest.raises(DataError):
        reliability(p, y[:10])


def test_combine_members_mutual_information():
    a = np.full((4, 4), 0.9, np.float32)
    same = combine_members([a, a])
    assert np.allclose(same["mutual_information"], 0, atol=1e-6) and np.allclose(same["spread"], 0)
    diff = combine_members([a, 1 - a])
    assert np.allclose(diff["probability"], 0.5)
    assert (diff["mutual_information"] > 0.3).all() and np.allclose(diff["spread"], 0.4)


def test_mc_dropout_hook_is_removed_even_after_error(tiny_checkpoint):
    ck = load_checkpoint(tiny_checkpoint)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        ref = ck.model(x)
        with mc_dropout(ck.model, 0.5):
            a, b = ck.model(x), ck.model(x)
        assert not torch.equal(a, b)  # dropout active
        with pytest.raises(RuntimeError), mc_dropout(ck.model, 0.5):
            raise RuntimeError("boom")
        assert torch.equal(ck.model(x), ref)
    assert not ck.model.training and not ck.model.segmentation_head._forward_pre_hooks


def test_ensemble_of_two_checkpoints(tiny_checkpoint, tmp_path):
    torch.manual_seed(1)
    other = save_checkpoint(ModelSpec().build().eval(), tmp_path / "other", TemzooMeta(pixel_size_nm=0.1))
    a, b = load_checkpoint(tiny_checkpoint), load_checkpoint(other)
    mg = Micrograph(np.random.default_rng(0).normal(size=(40, 56)).astype(np.float32), 0.05)
    ens = ensemble_predict([a, b], mg)
    assert ens.probability.shape == (40, 56)
    assert {"ensemble_spread", "ensemble_mutual_information"} <= set(ens.maps)
    assert ens.maps["ensemble_spread"].max() > 0
    assert "tiny" in ens.model_id and "other" in ens.model_id
