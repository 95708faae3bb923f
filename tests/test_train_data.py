"""Labelled sets: pairing, formats, pixel sizes, split by source image (no tile leaks), tiles, augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from temzoo.errors import DataError
from temzoo.train import augment as A
from temzoo.train import data as D
from tests.trainsets import disc_image, write_disc_set


def test_folder_pairs_by_stem_with_mask_suffix(tmp_path):
    images, masks = write_disc_set(tmp_path, n=3, size=48, mask_suffix="_mask")
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(images / "unlabelled.png")
    raw = D.read_set(images, masks)
    assert [it.name for it in raw.items] == ["img0", "img1", "img2"]
    assert raw.class_names == ["background", "foreground"]
    assert all(set(np.unique(it.mask)) <= {0, 1} and it.mask.shape == it.image.shape for it in raw.items)
    assert any("1 images" in w and "no label" in w for w in raw.warnings)
    assert len(raw.data_hash) == 64
    # the hash follows the content
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(masks / "img0_mask.png")
    assert D.read_set(images, masks).data_hash != raw.data_hash


def test_masks_in_the_images_folder(tmp_path):
    images, masks = write_disc_set(tmp_path, n=2, size=32, mask_suffix="_mask")
    for m in masks.iterdir():
        m.rename(images / m.name)
    raw = D.read_set(images, images)
    assert [it.name for it in raw.items] == ["img0", "img1"]


def test_no_pairs_and_bad_folders(tmp_path):
    images, _ = write_disc_set(tmp_path, n=2, size=32)
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(other / "zzz.png")
    with pytest.raises(DataError, match="no image/label pairs found"):
        D.read_set(images, other)
    with pytest.raises(DataError, match="does not exist"):
        D.read_set(tmp_path / "nope", other)
    with pytest.raises(DataError, match="not found"):
        D.read_set(images, tmp_path / "missing")


def test_size_mismatch_is_a_data_error(tmp_path):
    images, masks = write_disc_set(tmp_path, n=2, size=32)
    Image.fromarray(np.zeros((30, 32), np.uint8)).save(masks / "img1.png")
    with pytest.raises(DataError, match=r"mask for img1.png is 32x30 but the image is 32x32"):
        D.read_set(images, masks)


def test_bad_mask_values_name_the_file(tmp_path):
    images, masks = write_disc_set(tmp_path, n=2, size=32)
    Image.fromarray((np.arange(32 * 32).reshape(32, 32) % 200).astype(np.uint8)).save(masks / "img0.png")
    with pytest.raises(DataError, match="mask img0.png has values"):
        D.read_set(images, masks)


def test_coco_and_yolo_labels(tmp_path):
    images, _ = write_disc_set(tmp_path, n=2, size=40)
    coco = {"images": [{"id": 1, "file_name": "img0.png", "width": 40, "height": 40},
                       {"id": 2, "file_name": "img1.png", "width": 40, "height": 40},
                       {"id": 3, "file_name": "elsewhere.png", "width": 40, "height": 40}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[5, 5, 20, 5, 20, 20]]}],
            "categories": [{"id": 1, "name": "particle"}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    raw = D.read_set(images, annotations=tmp_path / "c.json")
    assert raw.class_names == ["background", "particle"]
    assert raw.items[0].mask.sum() > 50 and raw.items[1].mask.sum() == 0  # listed without annotations: empty
    assert any("elsewhere.png" in w for w in raw.warnings)
    yolo = tmp_path / "yolo"
    yolo.mkdir()
    (yolo / "img1.txt").write_text("0 0.1 0.1 0.6 0.1 0.6 0.6 0.1 0.6\n")
    raw = D.read_set(images, masks=yolo)  # a YOLO folder passed as --masks works too
    assert [it.name for it in raw.items] == ["img1"] and raw.items[0].mask.sum() > 300


def test_real_coco_set(shared_data):
    root = shared_data / "labeled" / "steel-dislocation-loops"
    raw = D.read_set(root / "images", root / "instances_coco.json", pixel_size_nm=0.39)
    assert len(raw.items) == 16 and raw.class_names == ["background", "hcloop"]
    assert all(it.pixel_size_nm == 0.39 for it in raw.items)


def test_pixel_size_resampling_and_labelset_sidecar(tmp_path):
    images, masks = write_disc_set(tmp_path, n=2, size=64)
    (tmp_path / "labelset.json").write_text(json.dumps({"items": {"img0": {"pixel_size_nm": 0.2},
                                                                  "img1": {"pixel_size_nm": 0.4}}}))
    raw = D.read_set(images, masks)
    assert raw.pixel_sizes == [0.2, 0.4] and raw.calibrated
    samples = D.prepare(raw, target_pixel_size_nm=0.4)
    assert samples[0].image.shape == (32, 32) and samples[1].image.shape == (64, 64)
    assert samples[0].mask.dtype == np.uint8 and set(np.unique(samples[0].mask)) <= {0, 1}
    for s in samples:  # the one shared normalisation: standardised per image
        assert abs(float(s.image.mean())) < 1e-3 and abs(float(s.image.std()) - 1) < 1e-2
    # given pixel size overrides; uncalibrated sets are shrunk by `downsample`
    raw = D.read_set(images, masks, pixel_size_nm=1.0)
    assert raw.pixel_sizes == [1.0, 1.0]
    (tmp_path / "labelset.json").unlink()
    raw = D.read_set(images, masks)
    assert not raw.calibrated
    assert D.prepare(raw, None, downsample=2)[0].image.shape == (32, 32)


def _samples(n, size=40):
    out = []
    for k in range(n):
        img = np.full((size, size), float(k), np.float32)  # each image's pixels carry its own index
        out.append(D.Sample(name=f"s{k}", image=img, mask=np.full((size, size), k % 2, np.uint8)))
    return out


def test_split_is_by_image_deterministic_and_pinnable():
    samples = _samples(8)
    tr, va, desc = D.split_by_image(samples, 0.25, seed=3)
    assert len(va) == 2 and len(tr) == 6 and "split by image" in desc
    assert not {s.name for s in tr} & {s.name for s in va}
    assert [s.name for s in D.split_by_image(samples, 0.25, seed=3)[1]] == [s.name for s in va]
    tr, va, _ = D.split_by_image(samples, 0.25, val_names=["s0", "s5"])
    assert [s.name for s in va] == ["s0", "s5"] and len(tr) == 6
    with pytest.raises(DataError, match="not in the labelled set"):
        D.split_by_image(samples, 0.25, val_names=["nope"])
    # two images: one of each, never an empty training set
    tr, va, _ = D.split_by_image(_samples(2), 0.9)
    assert len(tr) == 1 and len(va) == 1


def test_single_image_is_split_into_disjoint_regions():
    s = _samples(1, size=64)[0]
    s.image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    tr, va, desc = D.split_by_image([s], 0.25)
    assert "disjoint regions" in desc
    assert tr[0].image.shape == (48, 64) and va[0].image.shape == (16, 64)
    assert not set(tr[0].image.ravel().tolist()) & set(va[0].image.ravel().tolist())


def test_region_bands_hold_their_images_share_of_foreground():
    """Sparse objects: the band is an edge with about the image's share of foreground, not one that holds none."""
    mask = np.zeros((64, 64), np.uint8)
    mask[2:10, 2:10] = 1  # sparse objects: top left, the middle, the right edge; none in the bottom quarter
    mask[30:38, 30:38] = 1
    mask[30:38, 50:58] = 1
    img = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    for seed in range(6):  # whatever side the seed tries first
        tr, va, desc = D.split_by_region([D.Sample("s", img, mask)], 0.25, seed=seed)
        assert va[0].mask.any() and not desc.endswith("(bottom)"), desc  # the bottom band holds none
        assert (va[0].mask > 0).mean() == pytest.approx((mask > 0).mean(), abs=0.04)
        assert tr[0].image.size + va[0].image.size == img.size
        assert not set(tr[0].image.ravel().tolist()) & set(va[0].image.ravel().tolist())
    # no mask (denoising): still a band, at a seeded side
    tr, va, _ = D.split_by_region([D.Sample("s", img, None)], 0.25, seed=1)
    assert va[0].mask is None and va[0].image.size == 16 * 64


def test_tiles_never_leak_validation_pixels():
    samples = _samples(6, size=50)
    tr, va, _ = D.split_by_image(samples, 0.34, seed=1)
    val_values = {float(s.image[0, 0]) for s in va}
    sampler = D.TileSampler(tr, tile=32, scale_jitter=0.1, seed=0)
    x, m = sampler.sample(64)
    assert x.shape == (64, 32, 32) and m.shape == (64, 32, 32) and m.dtype == np.uint8
    seen = set(np.unique(np.round(x, 3)).tolist())  # bilinear scale jitter leaves ~1e-6 wiggles
    assert seen and not seen & val_values
    assert seen <= {float(s.image[0, 0]) for s in tr}


def test_small_images_are_padded_and_tile_fits_stride():
    img, mask = disc_image(40, 0)
    s = D.Sample("a", img.astype(np.float32), mask)
    assert D.effective_tile([s], 256, 8) == 40
    assert D.effective_tile([D.Sample("b", np.zeros((37, 90), np.float32), None)], 256, 8) == 32
    sampler = D.TileSampler([D.Sample("c", np.zeros((20, 20), np.float32), np.zeros((20, 20), np.uint8))], 32, 0.1)
    x, m = sampler.sample(2)
    assert x.shape == (2, 32, 32)


def test_dihedral_group_and_mask_alignment():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    outs = {tuple(A.dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8  # eight distinct symmetries
    g = torch.Generator().manual_seed(0)
    img = torch.randn(16, 1, 24, 24)
    xb, yb = A.random_dihedral(img, (img > 0.5).long(), g)
    assert torch.equal(yb, (xb > 0.5).long())  # the same transform hit image and mask


def test_poisson_noise_keeps_statistics_and_scales_with_dose():
    g = torch.Generator().manual_seed(0)
    img = torch.from_numpy(np.stack([disc_image(64, k)[0] for k in range(4)]).astype(np.float32))[:, None]
    img = (img - img.mean()) / img.std()
    low = A.poisson_noise(img, torch.full((4,), 2.0), g)
    high = A.poisson_noise(img, torch.full((4,), 500.0), g)
    for noisy in (low, high):
        assert torch.allclose(noisy.mean(dim=(1, 2, 3)), img.mean(dim=(1, 2, 3)), atol=1e-4)
        assert torch.allclose(noisy.std(dim=(1, 2, 3)), img.std(dim=(1, 2, 3)), atol=1e-3)
    err_low = (low - img).pow(2).mean()
    err_high = (high - img).pow(2).mean()
    assert err_low > 4 * err_high > 0
    doses = A.random_doses(1000, (2.0, 200.0), g)
    assert doses.min() >= 2.0 and doses.max() <= 200.0 and 10 < float(doses.median()) < 40  # log-uniform


def test_augment_batch_returns_new_tensors():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 1, 16, 16)
    y = (x > 0).long()
    x0 = x.clone()
    xa, ya = A.augment_batch(x, y, g, noise_probability=1.0)
    assert torch.equal(x, x0)  # caller's tensor untouched
    assert xa.shape == x.shape and ya.shape == y.shape and not torch.equal(xa, x)
