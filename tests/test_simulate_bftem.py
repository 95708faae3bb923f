"""Procedural BF-TEM-like families (temzoo.simulate.bftem): labels match the drawn features, seeds reproduce."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from temzoo.simulate.bftem import CLASS_NAMES, CLASSES, FAMILIES, family_image, write_families


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_labels_its_features_with_its_class(family):
    img, mask, draw = family_image(family, np.random.default_rng(4), size=128, scale=1.0, dose=1000.0)
    assert img.shape == mask.shape == (128, 128) and np.isfinite(img).all() and img.min() >= 0
    assert set(np.unique(mask)) == {0, CLASSES[family]} and draw.family == family
    fg = mask > 0
    assert 0.001 < fg.mean() < 0.6
    # the label sits where the image differs: foreground and background are apart by more than noise (for grain
    # boundaries, a contrast step between grains, in the gradient's magnitude rather than the intensity)
    seen = img
    if family == "boundaries":
        from scipy import ndimage as ndi

        seen = ndi.gaussian_gradient_magnitude(img.astype(np.float64), 1.0)
    gap = abs(float(seen[fg].mean()) - float(seen[~fg].mean()))
    if family != "voids":  # a void's interior and fringe have opposite signs; checked by the fringe below
        assert gap > 3 * float(seen[~fg].std()) / np.sqrt(fg.sum())
    a, b, _ = family_image(family, np.random.default_rng(4), size=128, scale=1.0, dose=1000.0)
    assert np.array_equal(a, img) and np.array_equal(b, mask)


def test_void_edges_carry_a_fresnel_fringe():
    from scipy import ndimage as ndi

    img, mask, _ = family_image("voids", np.random.default_rng(5), size=128, scale=1.5, dose=5000.0)
    fg = mask > 0
    ring = ndi.binary_dilation(fg, iterations=2) & ~ndi.binary_erosion(fg, iterations=2)
    inner = ndi.binary_erosion(fg, iterations=3)
    outer = ~ndi.binary_dilation(fg, iterations=4)
    # the edge differs from both the interior and the matrix, opposite to the interior's sign
    assert (img[ring].mean() - img[outer].mean()) * (img[inner].mean() - img[outer].mean()) < 0


def test_write_families_writes_pairs(tmp_path):
    draws = write_families(tmp_path, n_per_family=2, size=64, families=("loops", "boundaries"))
    assert len(draws) == 4 and len(CLASS_NAMES) == max(CLASSES.values()) + 1
    m = np.asarray(Image.open(tmp_path / "masks" / "boundaries-1.png"))
    im = np.asarray(Image.open(tmp_path / "images" / "boundaries-1.png"))
    assert im.dtype == np.uint16 and m.shape == im.shape == (64, 64) and set(np.unique(m)) <= {0, 1}
    with pytest.raises(ValueError, match="unknown family"):
        family_image("cats")


def test_relaxed_grains_are_equiaxed():
    from scipy.spatial import cKDTree

    from temzoo.simulate.bftem import _relaxed_seeds

    def area_spread(iterations):
        seeds = _relaxed_seeds(np.random.default_rng(1), (128, 128), 60, iterations)
        pts = np.stack(np.mgrid[0:128, 0:128], -1).reshape(-1, 2)
        areas = np.bincount(cKDTree(seeds).query(pts)[1], minlength=60)
        return areas.std() / areas.mean()

    # Lloyd steps even out the cells (Poisson-Voronoi cells spread ~0.5 in area; annealed grains much less)
    assert area_spread(3) < 0.6 * area_spread(0)
    # The centroids are unbiased on the coarse grid a large field uses: one cell's centroid is the field's centre
    assert np.allclose(_relaxed_seeds(np.random.default_rng(2), (256, 256), 1, 1), [[127.5, 127.5]])


def test_matrix_stays_near_one_on_small_images():
    from temzoo.simulate.bftem import _background

    # smooth noise with a sigma near the image size once kept a mean far above its std: normalised, it shifted whole
    # 128^2 matrices to -1.3 (clipped black) or 1.8
    means = [_background(np.random.default_rng(s), (128, 128)).mean() for s in range(30)]
    assert 0.6 < min(means) and max(means) < 1.4
