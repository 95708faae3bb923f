"""Issue 17: predict runs as torch ops on the model's device. On CPU tensors the device pipeline must reproduce the
NumPy pipeline it replaced (tests/predict_reference.py) on real micrographs, and its pieces must work on tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from temzoo.predict import PredictOptions, predict, prepare_input
from temzoo.types import Micrograph
from temzoo.zoo.checkpoint import load_checkpoint
from tests.predict_reference import normalize_np, reference_predict

STEEL = "labeled/steel-dislocation-loops/images/1.png"


@pytest.fixture(scope="module")
def ck(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


def _real(shared_data, h: int, w: int) -> np.ndarray:
    from temzoo.io import read_micrograph

    return np.ascontiguousarray(read_micrograph(shared_data / STEEL).frame(0)[:h, :w])


def _same(pred, ref: dict, margin: float = 1e-3) -> None:
    np.testing.assert_allclose(pred.probability, ref["probability"], atol=2e-5)
    np.testing.assert_allclose(pred.confidence, ref["confidence"], atol=2e-5)
    np.testing.assert_allclose(pred.maps["entropy"], ref["entropy"], atol=5e-5)
    sure = np.abs(ref["probability"] - 0.5) > margin  # a random net sits near 0.5: compare the mask off the edge
    assert sure.mean() > 0.2
    np.testing.assert_array_equal(pred.mask[sure], ref["mask"][sure])
    for k in ("tta_spread", "tta_mutual_information"):
        if k in ref:
            np.testing.assert_allclose(pred.maps[k], ref[k], atol=5e-5)


@pytest.mark.parametrize("px, tile, tta", [(0.08, 256, False), (0.05, 128, False), (0.03, 64, True)])
def test_device_pipeline_matches_the_numpy_one_on_a_real_image(ck, shared_data, px, tile, tta):
    """Resampled up (0.08 -> 0.05 nm), native and shrunk with TTA-8; several blended tiles, odd sizes (stride pad)."""
    img = _real(shared_data, 301, 259) if not tta else _real(shared_data, 150, 133)
    opts = PredictOptions(tile_size=tile, overlap=48, tta=tta, device="cpu")
    pred = predict(ck, Micrograph(img.copy(), px), opts)
    assert pred.info["tiles"] > 1
    assert pred.probability.dtype == pred.confidence.dtype == np.float32 and pred.mask.dtype == np.uint8
    _same(pred, reference_predict(ck, img, px, opts))


def test_normalize_matches_numpy_on_real_frames(shared_data):
    from temzoo.io import read_micrograph
    from temzoo.preprocess import normalize

    frames = [read_micrograph(shared_data / STEEL).frame(0),
              read_micrograph(shared_data / "dm/particlespy/JEOL HAADF Image.dm4").frame(0)]
    for f in frames:
        before = f.copy()
        out = normalize(f)
        assert out.dtype == np.float32 and out.shape == f.shape
        np.testing.assert_allclose(out, normalize_np(f), atol=1e-5)
        np.testing.assert_array_equal(f, before)
        # the same function on a tensor (on its device) gives the same numbers
        t = normalize(torch.from_numpy(np.ascontiguousarray(f)))
        assert isinstance(t, torch.Tensor)
        np.testing.assert_allclose(t.numpy(), out, atol=1e-6)
    bad = frames[0].astype(np.float32).copy()
    bad[3, 4], bad[10, 10] = np.nan, np.inf
    assert np.isfinite(normalize(bad)).all()


def test_prepare_input_on_a_device_keeps_the_frame_dtype_and_matches(ck, shared_data):
    real = _real(shared_data, 200, 180)
    counts = np.round((real - real.min()) / np.ptp(real) * 60000).astype(np.uint16)  # as a 16-bit camera writes
    mg = Micrograph(counts, 0.07)
    host = prepare_input(ck, mg, 0)
    dev = prepare_input(ck, mg, 0, device=torch.device("cpu"))
    assert isinstance(dev.image, torch.Tensor) and isinstance(host.image, np.ndarray)
    np.testing.assert_allclose(dev.image.numpy(), host.image, atol=1e-5)


def test_a_16_bit_frame_crosses_to_a_gpu_as_2_bytes_and_keeps_its_values():
    """The GPU branch of prepare_input's copy (temzoo.predict._uint16_to), run on CPU tensors: the full 0..65535
    range survives (values above 32767 are negative as int16 on the way)."""
    from temzoo.predict import _uint16_to

    a = np.array([[0, 1, 32767], [32768, 60000, 65535]], np.uint16)
    t = _uint16_to(a, torch.device("cpu"))
    assert t.dtype == torch.int32
    np.testing.assert_array_equal(t.numpy(), a.astype(np.int64))


def test_pad_and_merge_on_tensors_match_numpy():
    from temzoo.tiling import BlendMerger, TileGrid, pad_to_stride

    for shape in [(30, 17), (5, 3)]:  # reflect, and 'symmetric' for an image smaller than its pad
        a = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        p_np, hw = pad_to_stride(a, 8)
        p_t, hw_t = pad_to_stride(torch.from_numpy(a), 8)
        assert hw == hw_t
        np.testing.assert_array_equal(p_t.numpy(), p_np)
    grid = TileGrid.for_image((200, 136), 64, 16, 8)
    merger = BlendMerger(grid, 1)
    vals = np.random.default_rng(1).random((1, 200, 136)).astype(np.float32)
    for y, x in grid.boxes:  # the same field cut into tiles blends back to itself
        merger.add(y, x, torch.from_numpy(vals[:, y:y + grid.tile_h, x:x + grid.tile_w].copy()))
    np.testing.assert_allclose(merger.result().numpy(), vals, rtol=1e-5)


def test_blend_weights_built_on_the_device_are_the_host_ones_bit_for_bit():
    """A GPU merger builds its 9 weight tiles on the device from the 1D ramps (temzoo.tiling.device_weight); run
    here on CPU tensors, it gives exactly TileGrid.weight, for every tile of a 3 x 3 and a 1 x 2 grid."""
    from temzoo.tiling import TileGrid, device_weight

    for shape, tile in [((4096, 4096), 2048), ((64, 200), 128)]:
        grid = TileGrid.for_image(shape, tile, 48, 8)
        assert len(grid) in (9, 2)
        for y, x in grid.boxes:
            w = device_weight(grid, y, x, torch.device("cpu"))
            assert w.dtype == torch.float32
            np.testing.assert_array_equal(w.numpy(), grid.weight(y, x))


def test_map_functions_take_tensors_and_arrays_alike():
    from temzoo.confidence import entropy, hard_mask, max_probability

    p = np.random.default_rng(2).random((3, 20, 20)).astype(np.float32)
    p /= p.sum(0, keepdims=True)
    for q in (p[0], p):
        t = torch.from_numpy(q.copy())
        np.testing.assert_array_equal(hard_mask(t, 0.4).numpy(), hard_mask(q, 0.4))
        np.testing.assert_allclose(entropy(t).numpy(), entropy(q))
        np.testing.assert_allclose(max_probability(t).numpy(), max_probability(q))
    assert entropy(np.full((2, 2), 0.5, np.float32))[0, 0] == pytest.approx(np.log(2), rel=1e-5)


@pytest.mark.parametrize("classes,tta", [(1, True), (3, False)])
def test_maps_cross_back_from_a_gpu_as_float16_and_uint8(classes, tta):
    """The copy back from a GPU (``_host_maps(compact=True)``, run here on CPU tensors): float maps through float16
    (within its 2^-11 relative precision), the mask as the uint8 thresholded on the device, shapes and names as on
    the CPU path."""
    from temzoo.predict import _finish_maps, _host_maps

    rng = np.random.default_rng(classes)
    maps = torch.from_numpy(rng.random((classes + (2 if tta else 0), 33, 47)).astype(np.float32))
    opts = PredictOptions(tta=tta)
    plain = _host_maps(_finish_maps(maps, classes, opts), compact=False)
    small = _host_maps(_finish_maps(maps, classes, opts), compact=True)
    assert small[0].dtype == np.uint8 and np.array_equal(small[0], plain[0])
    assert small[3].keys() == plain[3].keys() and ("tta_spread" in small[3]) == tta
    for a, b in zip([small[1], small[2], *small[3].values()], [plain[1], plain[2], *plain[3].values()]):
        assert a.dtype == np.float32 and a.shape == b.shape and a.flags.c_contiguous
        np.testing.assert_allclose(a, b, rtol=2**-11, atol=1e-6)
