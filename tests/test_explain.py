"""Attributions (captum), Grad-CAM, Fourier-band ablation and the receptive field, on the real tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from temzoo.errors import DataError
from temzoo.explain import ExplainOptions, explain, fourier_band_importance, receptive_field, receptive_field_vs_lattice
from temzoo.types import Micrograph
from temzoo.zoo.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def ck(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


def _img(h=96, w=96):
    return np.random.default_rng(0).normal(size=(h, w)).astype(np.float32)


def test_receptive_field_is_measured_and_leaves_model_clean(ck):
    rf = receptive_field(ck)
    assert 8 < rf["extent_px"] < 400 and 0 < rf["radius95_px"] < rf["extent_px"]
    assert rf["extent_nm"] == pytest.approx(rf["extent_px"] * 0.05)
    assert all(p.grad is None for p in ck.model.parameters()) and not ck.model.training
    line = receptive_field_vs_lattice(rf, 0.235)
    assert "lattice periods" in line and "nm" in line


@pytest.mark.parametrize("method", ["integrated-gradients", "gradcam", "occlusion"])
def test_box_attribution_is_local(ck, method):
    mg = Micrograph(_img(160, 160), 0.05)
    box = (70, 70, 86, 86)
    # Few IG steps and a coarse occlusion grid keep CPU time low; locality does not depend on them.
    ex = explain(ck, mg, method, region=box, options=ExplainOptions(ig_steps=4, occlusion_window=16))
    assert ex.importance.shape == (160, 160) and ex.importance.dtype == np.float32
    assert ex.region[75, 75] and not ex.region[0, 0]
    assert np.isfinite(ex.importance).all() and np.abs(ex.importance).max() > 0
    # Pixels further from the box than the receptive field cannot influence it: exactly zero there.
    far = ck.spec.stride + receptive_field(ck)["extent_px"]
    outside = np.ones((160, 160), bool)
    outside[max(0, 70 - far):86 + far, max(0, 70 - far):86 + far] = False
    if outside.any() and method != "gradcam":
        assert np.abs(ex.importance[outside]).max() == 0.0
    # (Grad-CAM weighs a layer's activations over the whole window, now the whole image: not local by design)
    if method == "integrated-gradients":
        near = np.abs(ex.importance[60:96, 60:96]).mean()
        assert near > 0


def test_default_region_is_predicted_foreground_and_bad_regions_fail(ck):
    mg = Micrograph(_img(64, 64), 0.05)
    ex = explain(ck, mg, "gradcam")
    assert ex.region.any()
    with pytest.raises(DataError, match="empty"):
        explain(ck, mg, "gradcam", region=(10, 10, 10, 30))
    with pytest.raises(DataError, match="unknown explanation"):
        explain(ck, mg, "shap")


def test_fourier_bands_only_the_band_holding_the_fringes_matters(ck):
    # Lattice fringes of 0.32 nm period (6.4 px at 0.05 nm/px, on an FFT bin) plus a weak 3.2 nm modulation.
    yy, xx = np.indices((128, 128))
    img = np.sin(2 * np.pi * xx / 6.4).astype(np.float32) + 0.3 * np.sin(2 * np.pi * yy / 64.0).astype(np.float32)
    res = fourier_band_importance(ck, Micrograph(img, 0.05))
    assert res.unit == "nm" and res.spectrum_peaks and abs(res.spectrum_peaks[0] - 0.32) < 0.02
    by_name = {b.name: b for b in res.bands}
    fringe = next(b for b in res.bands if b.period_min < 0.32 < b.period_max)
    assert fringe.power_fraction > 0.8
    empty = [b for b in res.bands if b.power_fraction < 1e-6]
    assert empty, by_name
    for b in empty:  # removing a band that holds nothing changes nothing
        assert b.mean_abs_change < 1e-4
    assert fringe.mean_abs_change > 10 * max(b.mean_abs_change for b in empty)
    assert sum(b.power_fraction for b in res.bands) <= 1.0 + 1e-6
    ex = explain(ck, Micrograph(img, 0.05), "fourier")
    assert ex.importance.shape == (128, 128) and ex.info["bands"]["bands"]


def test_uncalibrated_bands_in_px(ck):
    res = fourier_band_importance(ck, Micrograph(_img(64, 64), None))
    assert res.unit == "nm"  # the model is calibrated: an uncalibrated image is taken at the model's size
    assert res.bands[-1].period_min == pytest.approx(0.1)


@pytest.mark.parametrize("method", ["integrated-gradients", "gradcam", "occlusion"])
def test_whole_image_by_default_and_a_limited_window_says_why(ck, method):
    """#14.8: no unexplained central square: the window is the whole image, or it is returned and explained."""
    mg = Micrograph(_img(160, 160), 0.05)
    opts = ExplainOptions(ig_steps=2, occlusion_window=32)
    ex = explain(ck, mg, method, options=opts)
    assert ex.info["window_whole_image"] and ex.info["window_note"] is None
    assert ex.info["explained_px"] == [0, 0, 160, 160]
    small = explain(ck, mg, method, region=(70, 70, 86, 86),
                    options=ExplainOptions(ig_steps=2, occlusion_window=32, max_side=64))
    y0, x0, y1, x1 = small.info["explained_px"]
    assert not small.info["window_whole_image"] and (y1 - y0, x1 - x0) == (64, 64)
    assert "window" in small.info["window_note"] and "limit" in small.info["window_note"]
    assert np.abs(small.importance[:y0]).max(initial=0) == 0  # nothing outside the drawn window
