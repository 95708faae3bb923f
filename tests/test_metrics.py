"""Pixel/object metrics, particle table, Ochoa's convex count, domain shift and folder evaluation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from skimage.draw import disk

from temzoo.errors import DataError
from temzoo.metrics import (
    convex_object_count,
    domain_shift,
    evaluate_folders,
    object_counts,
    particle_table,
    pixel_counts,
    supervised_metrics,
    unsupervised_metrics,
)
from temzoo.types import Micrograph
from temzoo.zoo.checkpoint import load_checkpoint, read_meta, save_checkpoint


def _discs(centres, r=10, shape=(128, 128)):
    m = np.zeros(shape, np.uint8)
    for c in centres:
        rr, cc = disk(c, r, shape=shape)
        m[rr, cc] = 1
    return m


def test_pixel_scores_match_hand_counts():
    truth = np.zeros((10, 10), np.uint8)
    truth[:5] = 1  # 50 foreground
    prob = np.zeros((10, 10), np.float32)
    prob[:3] = 0.9  # 30 tp
    prob[8:] = 0.7  # 20 fp
    c = pixel_counts(prob, truth)
    assert (c.tp, c.fp, c.fn, c.tn) == (30, 20, 20, 30)
    s = c.scores()
    assert s["precision"] == pytest.approx(0.6) and s["recall"] == pytest.approx(0.6)
    assert s["iou"] == pytest.approx(30 / 70) and s["dice"] == pytest.approx(0.6) == s["f1"]
    assert (c + c).scores()["iou"] == pytest.approx(30 / 70)
    perfect = pixel_counts(truth.astype(np.float32), truth).scores()
    assert perfect["f1"] == 1.0
    # Nothing labelled and nothing predicted (a validation band without foreground) is a perfect score, never NaN
    # (smp's "micro" reduction skips zero_division); nothing predicted of something labelled scores 0, precision 1.
    empty = pixel_counts(np.zeros_like(prob), np.zeros_like(truth)).scores()
    assert all(v == 1.0 for v in empty.values()), empty
    missed = pixel_counts(np.zeros_like(prob), truth).scores()
    assert missed["f1"] == 0.0 and missed["recall"] == 0.0 and missed["precision"] == 1.0
    with pytest.raises(DataError, match="differs"):
        pixel_counts(prob, truth[:5])


def test_multiclass_pixel_counts_pool_the_argmax_of_each_foreground_class():
    """(C, H, W) probabilities: argmax; classes 1..C-1 each counted against truth == c, summed (validation's rule)."""
    truth = np.array([[0, 1, 1, 2]])
    prob = np.zeros((3, 1, 4), np.float32)
    prob[[0, 1, 2, 2], 0, [0, 1, 2, 3]] = 0.6  # argmax 0, 1, 2, 2
    c = pixel_counts(prob, truth)
    # class 1: tp 1 (px 1), fn 1 (px 2), tn 2; class 2: tp 1 (px 3), fp 1 (px 2), tn 2
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 4)
    with pytest.raises(DataError, match="differs"):
        pixel_counts(prob, truth[:, :2])


def test_object_matching_at_iou_half():
    truth = _discs([(30, 30), (30, 90), (90, 60)])
    pred = _discs([(30, 30), (30, 100)])  # one exact, one shifted by 10 px (IoU < 0.5), one missed
    oc = object_counts(pred, truth, pixel_size_nm=0.5)
    s = oc.scores()
    assert (oc.matched, oc.n_pred, oc.n_true) == (1, 2, 3)
    assert s["object_f1"] == pytest.approx(2 / 5)
    assert s["count_error"] == pytest.approx(1 / 3)
    assert s["size_distance"] == pytest.approx(0.0, abs=0.2)  # same disc sizes
    full = supervised_metrics(pred.astype(np.float32), truth, 0.5)
    assert {"iou", "dice", "precision", "recall", "f1", "object_f1", "count_error", "ece"} <= set(full)


def test_particle_table_in_nm():
    m = _discs([(40, 40)], r=10)
    conf = np.full(m.shape, 0.8, np.float32)
    t = particle_table(m, conf, pixel_size_nm=0.5)
    assert len(t) == 1
    row = t.iloc[0]
    assert row.area_nm2 == pytest.approx(row.area_px * 0.25)
    assert row.equivalent_diameter_nm == pytest.approx(2 * 10 * 0.5, rel=0.05)
    assert row.circularity > 0.85 and row.mean_confidence == pytest.approx(0.8)
    assert (row.centroid_y_px, row.centroid_x_px) == pytest.approx((40, 40))
    un = particle_table(m, None, None)
    assert np.isnan(un.iloc[0].area_nm2) and np.isnan(un.iloc[0].mean_confidence)


def test_convex_object_count_ochoa():
    square = np.zeros((128, 128), np.uint8)
    square[20:60, 20:60] = 1
    assert convex_object_count(square) == 1
    ell = np.zeros((128, 128), np.uint8)
    ell[20:100, 20:40] = 1
    ell[80:100, 20:100] = 1
    assert convex_object_count(ell) == 0
    border = np.zeros((128, 128), np.uint8)
    border[0:10, 70:90] = 1  # touches the border: cleared
    assert convex_object_count(border) == 0
    grains = np.zeros((64, 64), np.uint8)
    grains[:, 31:33] = 1
    grains[31:33, :] = 1  # boundary lines; inverted, the 4 grains touch the border -> cleared
    assert convex_object_count(grains, invert=True) == 0


def test_unsupervised_metrics(tiny_checkpoint):
    from temzoo.predict import predict

    ck = load_checkpoint(tiny_checkpoint)
    pred = predict(ck, Micrograph(np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32), 0.05))
    u = unsupervised_metrics(pred)
    assert u["size_unit"] == "nm" and 0 <= u["uncertain_fraction"] <= 1
    assert u["n_objects"] == len(particle_table(pred.mask, pred.confidence, 0.05))
    assert u["mean_confidence"] == pytest.approx(float(pred.confidence.mean()))


def test_domain_shift_flags_pixel_size_and_training_stats(tiny_checkpoint, tmp_path):
    ck = load_checkpoint(tiny_checkpoint)
    img = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    ok = domain_shift(ck, Micrograph(img, 0.05))
    assert ok.pixel_size_ratio == pytest.approx(1.0)
    far = domain_shift(ck, Micrograph(img, 0.2))
    assert far.pixel_size_ratio == pytest.approx(4.0) and any("differs" in w for w in far.warnings)
    meta = read_meta(tiny_checkpoint)
    meta.provenance = {"input_stats": {"skewness": 3.0, "kurtosis": 0.0, "clipped_fraction": 0.0,
                                       "spectrum_peaks": [0.5]}}
    ck2 = load_checkpoint(save_checkpoint(ck.model, tmp_path / "stats", meta))
    sh = domain_shift(ck2, Micrograph(img, 0.05))
    assert sh.training_stats and any("skewness" in w for w in sh.warnings)


def test_evaluate_folders_on_real_labelled_images(tiny_checkpoint, shared_data, tmp_path):
    src = shared_data / "labeled/steel-dislocation-loops"
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("1.png", "2.png"):
        shutil.copy(src / "images" / name, tmp_path / "images" / name)
        shutil.copy(src / "masks" / name, tmp_path / "masks" / name)
    ck = load_checkpoint(tiny_checkpoint)
    res = evaluate_folders(ck, tmp_path / "images", tmp_path / "masks", pixel_size_nm=0.05)
    assert res["n_images"] == 2 and len(res["per_image"]) == 2
    for k in ("f1", "iou", "dice", "precision", "recall", "object_f1", "count_error", "ece"):
        assert np.isfinite(res[k]), k
    assert 0 <= res["f1"] <= 1 and res["size_unit"] == "nm"
    (tmp_path / "images" / "3.png").write_bytes((src / "images" / "3.png").read_bytes())
    with pytest.raises(DataError, match="3.png"):
        evaluate_folders(ck, tmp_path / "images", tmp_path / "masks", pixel_size_nm=0.05)
