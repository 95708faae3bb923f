"""Inference: tiling, resampling, stacks, TTA / MC-dropout, and that nothing shared is modified."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from temzoo.errors import DataError, ModelError
from temzoo.predict import PredictOptions, predict, predict_stack, runtime_model
from temzoo.tiling import BlendMerger, TileGrid, pad_to_stride, tile_starts
from temzoo.types import Micrograph
from temzoo.zoo.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def ck(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


def _img(h=96, w=80, seed=0):
    return np.random.default_rng(seed).normal(size=(h, w)).astype(np.float32)


# --------------------------------------------------------------------------------------------------------- tiling
def test_tile_starts_cover_and_stay_on_stride():
    for length, tile, overlap in [(2048, 704, 48), (1000, 256, 32), (4096, 864, 48), (100, 128, 16)]:
        starts = tile_starts(length, tile, overlap, stride=8)
        assert starts[0] == 0 and starts[-1] + min(tile, length) >= length
        assert all(s % 8 == 0 for s in starts[:-1])
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_grid_shrinks_tiles_and_blend_is_exact_for_constant_tiles():
    grid = TileGrid.for_image((2048, 2048), 1024, 48, 8)
    assert len(grid.ys) == 3 and grid.tile_h < 1024  # 3 tiles of ~720 px, not 3 of 1024
    assert grid.tile_h % 8 == 0
    small = TileGrid.for_image((200, 136), 64, 16, 8)
    merger = BlendMerger(small, 1)
    for y, x in small.boxes:
        merger.add(y, x, np.full((1, small.tile_h, small.tile_w), 0.7, np.float32))
    out = merger.result()
    np.testing.assert_allclose(out, 0.7, rtol=1e-5)


def test_pad_to_stride_does_not_touch_input():
    a = _img(30, 17)
    b = a.copy()
    p, shape = pad_to_stride(a, 8)
    assert p.shape == (32, 24) and shape == (30, 17)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p[:30, :17], a)


# -------------------------------------------------------------------------------------------------------- predict
def test_prediction_on_original_grid_and_inputs_untouched(ck):
    img = _img(90, 70)
    mg = Micrograph(img, 0.1)  # 2x the model's pixel size: resampled to 180 x 140 and back
    before = img.copy()
    params = {k: v.clone() for k, v in ck.model.state_dict().items()}
    pred = predict(ck, mg)
    assert pred.mask.shape == pred.probability.shape == pred.confidence.shape == (90, 70)
    assert pred.mask.dtype == np.uint8 and pred.probability.dtype == np.float32
    assert pred.info["model_grid_shape"] == [180, 140]
    assert pred.pixel_size_nm == 0.1 and pred.resampled_to_nm == 0.05
    assert 0.5 <= pred.confidence.min() and pred.confidence.max() <= 1.0
    np.testing.assert_array_equal((pred.probability >= 0.5).astype(np.uint8), pred.mask)
    np.testing.assert_array_equal(img, before)
    assert not ck.model.training
    for k, v in ck.model.state_dict().items():
        torch.testing.assert_close(v, params[k])
    # the shared model is not moved or converted; inference ran on a private copy
    assert runtime_model(ck.model, torch.device("cpu")) is not ck.model
    assert all(p.is_contiguous() for p in ck.model.parameters())


def test_tiled_matches_one_full_frame_tile(ck):
    mg = Micrograph(_img(256, 256, 1), 0.05)
    full = predict(ck, mg, PredictOptions(tile_size=512))
    tiled = predict(ck, mg, PredictOptions(tile_size=128, overlap=64))
    assert full.info["tiles"] == 1 and tiled.info["tiles"] == 9
    assert np.abs(tiled.probability - full.probability).max() < 3e-3


def test_uncalibrated_and_far_pixel_size_warn(ck):
    un = predict(ck, Micrograph(_img(), None))
    assert any("uncalibrated" in w for w in un.warnings)
    assert un.resampled_to_nm == 0.05 and un.info["scale_factor"] == 1.0
    far = predict(ck, Micrograph(_img(40, 40), 0.25))
    assert any("differs from the model" in w for w in far.warnings)
    with pytest.raises(DataError, match="shrinks below"):
        predict(ck, Micrograph(_img(40, 40), 0.001))


def test_progress_reaches_one(ck):
    seen = []
    predict(ck, Micrograph(_img(120, 120), 0.05), PredictOptions(tile_size=64, overlap=16, batch_size=2),
            progress=lambda f, t: seen.append(f))
    assert len(seen) > 1 and seen == sorted(seen) and seen[-1] == 1.0


def test_tta_is_equivariant_to_rotation(ck):
    # Averaging over the whole dihedral group makes the prediction of a rotated image the rotated prediction.
    img = _img(48, 48, 3)
    a = predict(ck, Micrograph(img, 0.05), PredictOptions(tta=True))
    b = predict(ck, Micrograph(np.rot90(img).copy(), 0.05), PredictOptions(tta=True))
    np.testing.assert_allclose(np.rot90(a.probability), b.probability, atol=1e-5)
    assert {"tta_spread", "tta_mutual_information", "entropy"} <= set(a.maps)
    assert a.maps["tta_spread"].max() > 0
    plain = predict(ck, Micrograph(img, 0.05))
    assert not np.allclose(np.rot90(plain.probability), predict(ck, Micrograph(np.rot90(img).copy(), 0.05))
                           .probability, atol=1e-5)


def test_mc_dropout_leaves_model_and_rng_alone(ck):
    state = torch.random.get_rng_state()
    mg = Micrograph(_img(48, 48), 0.05)
    a = predict(ck, mg, PredictOptions(mc_dropout=3, seed=1))
    b = predict(ck, mg, PredictOptions(mc_dropout=3, seed=1))
    c = predict(ck, mg, PredictOptions(mc_dropout=3, seed=2))
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(a.probability, b.probability)
    assert not np.array_equal(a.probability, c.probability)
    assert a.maps["mc_mutual_information"].min() >= 0 and a.maps["mc_spread"].max() > 0
    assert not ck.model.training
    rt = runtime_model(ck.model, torch.device("cpu"))
    assert not rt.segmentation_head._forward_pre_hooks and not ck.model.segmentation_head._forward_pre_hooks


def test_stack_and_bad_frames(ck):
    data = np.stack([_img(48, 48, i) for i in range(3)])
    preds = predict_stack(ck, Micrograph(data, 0.05))
    assert len(preds) == 3 and preds[2].info["frame"] == 2
    assert not np.array_equal(preds[0].probability, preds[1].probability)
    with pytest.raises(DataError, match="frame"):
        predict(ck, Micrograph(data, 0.05), frame=5)


def test_denoising_model_refused(tiny_checkpoint, tmp_path):
    from temzoo.zoo.checkpoint import read_meta, save_checkpoint

    ck = load_checkpoint(tiny_checkpoint)
    meta = read_meta(tiny_checkpoint)
    meta.task = "denoising"
    den = load_checkpoint(save_checkpoint(ck.model, tmp_path / "den", meta))
    with pytest.raises(ModelError, match="not a segmentation model"):
        predict(den, Micrograph(_img(), 0.05))


def test_real_dm3_gives_maps_on_its_grid(ck, shared_data):
    from temzoo.io import read_micrograph

    mg = read_micrograph(shared_data / "dm/rosettasciio/2D/multi_signal.dm3")
    pred = predict(ck, mg)
    assert pred.mask.shape == mg.shape == (512, 512)
    assert pred.pixel_size_nm == pytest.approx(0.01775, rel=1e-3)
    assert pred.info["model_grid_shape"] == [182, 182]
