"""Issue 17: training tiles cut on the device (crop, scale jitter and dihedral in one affine grid), validation on the
device, and batch sizing from free GPU memory. Run here on CPU tensors, the code path CUDA takes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from temzoo.train import data as D
from temzoo.train.augment import augment_batch
from temzoo.train.config import TrainConfig
from temzoo.train.loop import batch_from_memory, tile_and_batch_from_memory, train
from tests.trainsets import write_disc_set


def _ramp_sample(h=40, w=56) -> D.Sample:
    img = np.arange(h * w, dtype=np.float32).reshape(h, w)  # every pixel value names its position
    return D.Sample("r", img, (img % 7 == 0).astype(np.uint8))


def test_device_tiles_without_jitter_are_exact_crops_in_one_of_8_orientations():
    s = _ramp_sample()
    sampler = D.DeviceTileSampler([s], tile=16, scale_jitter=0.0, seed=0, device="cpu")
    x, m = sampler.sample(64)
    assert x.shape == m.shape == (64, 1, 16, 16) and x.dtype == torch.float32 and m.dtype == torch.int64
    seen = set()
    for tile, mask in zip(x[:, 0].numpy(), m[:, 0].numpy()):
        r = np.round(tile).astype(np.int64)
        np.testing.assert_allclose(tile, r, atol=1e-3)  # no interpolation at zoom 1: whole source pixels
        # Undo the orientation: the corner holding the smallest value is the crop's top-left corner.
        found = [(k, f) for k in range(4) for f in (False, True)
                 if _is_crop(np.rot90(np.fliplr(r) if f else r, k), s.image)]
        assert found, "not a crop of the image in any dihedral orientation"
        seen.add(found[0])
        np.testing.assert_array_equal(mask, (r % 7 == 0))  # the mask went through the same transform
    assert len(seen) == 8  # all 8 orientations occur


def _is_crop(t: np.ndarray, img: np.ndarray) -> bool:
    y, x = divmod(int(t[0, 0]), img.shape[1])
    h, w = t.shape
    return y + h <= img.shape[0] and x + w <= img.shape[1] and np.array_equal(t, img[y:y + h, x:x + w])


def test_device_tiles_are_reproducible_per_epoch_and_scale_jitter_zooms():
    s = _ramp_sample(64, 64)
    a = D.DeviceTileSampler([s], 16, 0.1, seed=3, device="cpu")
    b = D.DeviceTileSampler([s], 16, 0.1, seed=3, device="cpu")
    xa, _ = a.sample(32)
    xb, _ = b.sample(32)
    assert torch.equal(xa, xb)
    # a zoomed tile spans c = 16/zoom source pixels: neighbours differ by 1/zoom along a row (0.9..1.1)
    steps = (xa[:, 0, 0, 1:] - xa[:, 0, 0, :-1]).abs()
    steps = torch.where(steps > 32, steps / 64, steps)  # a rotated tile steps along columns (x64)
    assert float(steps.min()) > 0.85 and float(steps.max()) < 1.15 and float(steps.std()) > 0.01


def test_device_tiles_never_leak_validation_pixels():
    rng = np.random.default_rng(0)
    samples = [D.Sample(f"s{i}", np.full((50, 50), float(i), np.float32) + rng.normal(0, 1e-3, (50, 50)).astype(
        np.float32), np.zeros((50, 50), np.uint8)) for i in range(6)]
    tr, va, _ = D.split_by_image(samples, 0.34, seed=1)
    x, _ = D.DeviceTileSampler(tr, 32, 0.1, seed=0, device="cpu").sample(64)
    seen = set(np.unique(np.round(x.numpy())).tolist())
    assert seen == {float(int(s.name[1:])) for s in tr}


def test_noise_on_a_device_batch_keeps_shapes_and_unpicked_tiles():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 16, 16)
    y = (x > 0).long()
    xa, ya = augment_batch(x, y, g, noise_probability=1.0, jitter=0.0, dihedral=False)
    assert xa.shape == x.shape and torch.equal(ya, y) and not torch.equal(xa, x)
    xb, _ = augment_batch(x, y, g, noise_probability=0.0, jitter=0.0, dihedral=False)
    assert torch.equal(xb, x)


def test_gpu_noise_path_noises_the_picked_tiles_only():
    """The GPU branch (fixed shapes: every tile noised, the picked ones kept), run on CPU tensors: about half the tiles
    change at probability 0.5, the others stay bit-identical, and each noisy tile keeps its mean and sd."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1, 16, 16)
    xa, _ = augment_batch(x, None, g, noise_probability=0.5, jitter=0.0, dihedral=False, fixed_shapes=True)
    changed = [not torch.equal(a, b) for a, b in zip(xa, x)]
    assert 16 < sum(changed) < 48
    for a, b, c in zip(xa, x, changed):
        if c:
            assert abs(float(a.mean() - b.mean())) < 1e-4 and abs(float(a.std() / b.std()) - 1) < 1e-3


def test_batch_from_memory():
    mib = 2**20
    # 100 MiB fixed + 50 MiB per tile; 10 GiB free, 60 % usable -> (6144 - 100) / 50 = 120 -> capped at 64
    assert batch_from_memory(10 * 1024 * mib, 200 * mib, 300 * mib, floor=8) == 64
    assert batch_from_memory(1024 * mib, 200 * mib, 300 * mib, floor=8) == 10  # (614 - 100) // 50
    assert batch_from_memory(100 * mib, 200 * mib, 300 * mib, floor=8) == 8  # never below the config's batch
    assert batch_from_memory(10 * 1024 * mib, 200 * mib, 300 * mib, floor=96) == 96


def test_tile_and_batch_from_free_memory():
    """The CUDA sizing with made-up memory numbers (peaks 200 / 300 MiB at batch 2 / 4 of 256 px tiles: 100 MiB
    fixed + 50 MiB per tile, scaling with the tile's area), floors 128 px and 8 tiles, stride 32."""
    mib = 2**20

    def size(free_mib):
        return tile_and_batch_from_memory(free_mib * mib, 200 * mib, 300 * mib, tile=256, min_tile=128, floor=8,
                                          stride=32)

    assert size(10 * 1024) == (256, 64)  # plenty: the largest tile, the batch capped
    assert size(1024) == (256, 10)  # (614 - 100) // 50 tiles of 256 px hold more than the floor of 8
    # 500 MiB: (300 - 100) MiB hold 4 tiles of 256 px, 7 of 192 px (28 MiB each), 10 of 160 px (19.5 MiB each)
    assert size(500) == (160, 10)
    assert size(200) == (128, 8)  # not even 8 tiles of 128 px: the floors, and the OOM handler halves the batch



def test_gpu_sizing_counts_the_training_images_the_device_sampler_holds():
    """What gpu_autosize subtracts from free memory is what DeviceTileSampler puts on the device (images wider than
    a tile: no padding), with and without masks; feed=auto cuts tiles on the device only on CUDA."""
    from temzoo.train.loop import feeds_on_device

    samples = [_ramp_sample(40, 56), _ramp_sample(64, 48)]
    sampler = D.DeviceTileSampler(samples, tile=16, seed=0, device="cpu")
    held = sum(t.numel() * t.element_size() for t in [*sampler.images, *sampler.masks])
    assert D.DeviceTileSampler.device_bytes(samples) == held == (40 * 56 + 64 * 48) * 8
    unlabelled = [D.Sample("u", s.image, None) for s in samples]
    assert D.DeviceTileSampler.device_bytes(unlabelled) == (40 * 56 + 64 * 48) * 4
    cfg = TrainConfig(images="x", masks="y")
    assert feeds_on_device(cfg, torch.device("cuda")) and not feeds_on_device(cfg, torch.device("cpu"))
    cfg.feed = "host"
    assert not feeds_on_device(cfg, torch.device("cuda"))

@pytest.fixture(scope="module")
def disc_set(tmp_path_factory):
    return write_disc_set(tmp_path_factory.mktemp("discs"), n=4, size=64)


def test_training_fed_on_the_device_learns_and_validates(disc_set, tmp_path):
    """The whole loop with feed=device (the CUDA path) on the CPU: tiles cut by DeviceTileSampler, dihedral in
    the crop, validation on the device; it learns the discs like the host feed does."""
    images, masks = disc_set
    scores = {}
    for feed in ("device", "host"):
        cfg = TrainConfig(images=str(images), masks=str(masks), strategy="scratch", epochs=6, steps_per_epoch=6,
                          batch_size=8, tile_size=32, lr=3e-3, seed=0, feed=feed, device="cpu", cpu_threads=1)
        train(cfg, tmp_path / feed, out=tmp_path / f"{feed}-model")
        lines = [json.loads(x) for x in (tmp_path / feed / "metrics.jsonl").read_text().splitlines()]
        scores[feed] = max(r["val_f1"] for r in lines)
    assert scores["device"] > 0.6, scores
    assert abs(scores["device"] - scores["host"]) < 0.25, scores


def test_unknown_feed_is_refused(disc_set):
    from temzoo.errors import TemzooError

    images, masks = disc_set
    with pytest.raises(TemzooError, match="unknown feed"):
        TrainConfig(images=str(images), masks=str(masks), feed="gpu").validate()
