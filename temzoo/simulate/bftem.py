"""Cheap procedural bright-field-TEM-like images with exact labels, for pretraining a generalist base.

Not physics (no multislice): each family draws the *kind* of contrast a microscopist sees at mid magnification, at a
random feature scale (a stand-in for pixel size), dose, contrast sign, background texture and blur, in milliseconds
per 256^2 image:

- ``voids``: round voids/bubbles, brighter or darker than the matrix, with a Fresnel fringe at the edge whose sign
  follows the defocus (under-focus: bright void, dark fringe; over-focus: the reverse);
- ``loops``: dislocation loops as dark filled or ring-shaped ellipses (label: the filled loop, as in the CREME set);
- ``lines``: dislocation lines, dark smooth random curves (label: the line);
- ``boundaries``: grain-boundary networks, a Voronoi tessellation (0-3 Lloyd steps: from Poisson-Voronoi slivers to
  equiaxed, annealed grains) with bright-field diffraction contrast per grain
  (a grey level, some grains near their Bragg condition and dark, bend contours, thickness fringes along boundaries),
  grains ~10-80 px across (label: the boundary lines, 1-5 px wide);
- ``particles``: mass-thickness particles (dark discs/ellipses, some overlapping) on an amorphous substrate.

Each family labels one class (``CLASSES``) so a multi-class net learns all of them at once; ``family_image`` returns
``(image float32 in counts, mask uint8 class index)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

FAMILIES = ("boundaries", "loops", "lines", "particles", "voids")
# Class index per family in the generalist's multi-class head (0 = background). Real sets map onto these too.
CLASSES = {"boundaries": 1, "loops": 2, "lines": 3, "particles": 4, "voids": 5}
CLASS_NAMES = ["background", "grain-boundary", "dislocation-loop", "dislocation-line", "particle", "void"]


@dataclass(frozen=True)
class Draw:
    """The random imaging conditions of one image (recorded so a set can say what it spans)."""

    family: str
    scale: float  # feature size multiplier (1 = ~0.4 nm/px-like sizes at 256^2; 0.5 = coarser pixels)
    dose: float  # mean counts per pixel
    blur_px: float
    invert: bool  # contrast sign of the feature (dark on bright is the BF default)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    n -= n.mean()  # a sigma near the image size leaves a mean far above the tiny std: it darkened whole images
    return n / (n.std() + 1e-9)


def _background(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Matrix: thickness gradient + bend-contour-like low-frequency swings + fine amorphous texture (mean ~1)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    grad = rng.uniform(-0.15, 0.15) * (xx - 0.5) + rng.uniform(-0.15, 0.15) * (yy - 0.5)
    low = rng.uniform(0.02, 0.12) * _smooth_noise(rng, shape, rng.uniform(20, 60))
    # Fine texture up to strong speckle (irradiated steel's matrix is mottled at 1-3 px, not flat)
    fine = rng.uniform(0.01, 0.15) * _smooth_noise(rng, shape, rng.uniform(0.7, 3.0))
    return 1.0 + grad + low + fine


def _ellipse(shape, cy, cx, ry, rx, angle) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    c, s = np.cos(angle), np.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s) / max(rx, 0.5)
    v = (-(xx - cx) * s + (yy - cy) * c) / max(ry, 0.5)
    return np.sqrt(u * u + v * v)  # 1 on the outline


def _voids(rng, shape, scale):
    img = np.zeros(shape)
    mask = np.zeros(shape, bool)
    sign = rng.choice([-1.0, 1.0])  # defocus sign: under-focus bright void + dark fringe
    for _ in range(int(rng.integers(3, 25))):
        r = rng.uniform(3, 18) * scale
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        d = _ellipse(shape, cy, cx, r, r * rng.uniform(0.85, 1.15), rng.uniform(0, np.pi)) * r  # px from centre
        inside = d <= r
        mask |= inside
        width = rng.uniform(1.0, 2.5)
        img += sign * rng.uniform(0.08, 0.3) * inside
        img += -sign * rng.uniform(0.15, 0.5) * np.exp(-((d - r) / width) ** 2)  # Fresnel fringe at the edge
    return img, mask


def _loops(rng, shape, scale):
    img = np.zeros(shape)
    mask = np.zeros(shape, bool)
    for _ in range(int(rng.integers(8, 40))):
        r = rng.uniform(3, 14) * scale
        ry = r * rng.uniform(0.4, 1.0)
        d = _ellipse(shape, rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), ry, r, rng.uniform(0, np.pi))
        inside = d <= 1.0
        mask |= inside
        kind = rng.random()
        if kind < 0.35:  # small loops: black dots/blobs
            img -= rng.uniform(0.3, 0.7) * np.clip(1.2 - d, 0, 1)
        elif kind < 0.6:  # unresolved loops off the Bragg condition: a fuzzy dark blob whose strain field spreads
            img -= rng.uniform(0.2, 0.6) * np.exp(-(d / rng.uniform(0.6, 1.3)) ** 2)
        else:  # resolved loops: dark ring, faint interior
            w = rng.uniform(0.15, 0.35)
            img -= rng.uniform(0.3, 0.7) * np.exp(-((d - 1) / w) ** 2) + rng.uniform(0, 0.15) * inside
    return img, mask


def _curve(rng, shape, n=200):
    """A smooth random walk across (part of) the field, as (y, x) points."""
    h, w = shape
    p = np.array([rng.uniform(0, h), rng.uniform(0, w)])
    ang = rng.uniform(0, 2 * np.pi)
    turn = rng.uniform(0.01, 0.08)
    step = max(h, w) / n * rng.uniform(1.5, 3.0)
    pts = []
    for _ in range(n):
        ang += rng.normal(0, turn)
        p = p + step * np.array([np.sin(ang), np.cos(ang)])
        pts.append(p.copy())
    return np.array(pts)


def _draw_polyline(shape, pts, width) -> np.ndarray:
    out = np.zeros(shape, bool)
    h, w = shape
    for (y0, x0), (y1, x1) in zip(pts[:-1], pts[1:]):
        n = int(max(abs(y1 - y0), abs(x1 - x0))) + 2
        ys, xs = np.linspace(y0, y1, n).round().astype(int), np.linspace(x0, x1, n).round().astype(int)
        ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        out[ys[ok], xs[ok]] = True
    return ndi.binary_dilation(out, iterations=max(1, int(round(width / 2)))) if width > 1.5 else out


def _lines(rng, shape, scale):
    img = np.zeros(shape)
    mask = np.zeros(shape, bool)
    for _ in range(int(rng.integers(2, 10))):
        line = _draw_polyline(shape, _curve(rng, shape), rng.uniform(2, 5) * scale)
        mask |= line
        img -= rng.uniform(0.3, 0.7) * ndi.gaussian_filter(line.astype(float), 0.8)
    return img, mask


def _boundaries(rng, shape, scale):
    h, w = shape
    # Grain size log-uniform over ~10-80 px (at scale 1, 256^2): real networks range from a few fine grains per
    # micrometre to coarse ones, and the first version (40-105 px, labels 4-18 px wide) only drew the coarse end.
    grain = np.exp(rng.uniform(np.log(10), np.log(80))) * scale
    n = int(np.clip(h * w / grain**2, 3, 2000))
    seeds = _relaxed_seeds(rng, shape, n, int(rng.integers(0, 4)))
    # Voronoi labels with a little boundary waviness (grains are not perfect polygons)
    wave = min(4 * scale, grain / 8)
    wy = np.arange(h)[:, None] + wave * _smooth_noise(rng, shape, 12)
    wx = np.arange(w)[None, :] + wave * _smooth_noise(rng, shape, 12)
    _, idx = cKDTree(seeds).query(np.stack([wy.ravel(), wx.ravel()], 1))
    lab = idx.reshape(shape)
    # The boundary as a line: pixels whose right or lower neighbour is another grain, widened to 1, 3 or 5 px (x scale),
    # as boundaries are traced by hand.
    edge = np.zeros(shape, bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    img = _grain_contrast(rng, shape, lab, n, edge, grain)
    width = rng.uniform(1, 5) * scale
    mask = ndi.binary_dilation(edge, iterations=int(round((width - 1) / 2))) if width >= 3 else edge
    img -= rng.uniform(0.0, 0.3) * ndi.gaussian_filter(mask.astype(float), 1.0)  # boundaries often darker
    return img, mask


def _relaxed_seeds(rng, shape, n: int, iterations: int) -> np.ndarray:
    """``n`` grain seeds, moved ``iterations`` Lloyd steps towards their cells' centroids: a Poisson-Voronoi
    tessellation (0 steps) has many slivers and acute corners; an annealed polycrystal's grains are equiaxed, with
    near-120-degree triple junctions, which a few steps give."""
    h, w = shape
    seeds = np.stack([rng.uniform(0, h, n), rng.uniform(0, w, n)], 1)
    if iterations == 0:
        return seeds
    step = max(1, int(min(h, w) // 128))  # centroids on a coarser grid: the cells, not every pixel, matter
    gy, gx = np.mgrid[0:h:step, 0:w:step]
    pts = np.stack([gy.ravel(), gx.ravel()], 1).astype(float) + (step - 1) / 2  # each grid point: its block's centre
    for _ in range(iterations):
        _, idx = cKDTree(seeds).query(pts)
        counts = np.bincount(idx, minlength=n)
        has = counts > 0
        for k in (0, 1):
            seeds[has, k] = np.bincount(idx, pts[:, k], minlength=n)[has] / counts[has]
    return seeds


def _grain_contrast(rng, shape, lab, n, edge, grain) -> np.ndarray:
    """Bright-field diffraction contrast of a polycrystal: each grain's tilt off its Bragg condition sets its grey level
    (a share of grains sits near it and goes dark), bend contours cross bent grains as dark bands, and inclined
    boundaries show thickness fringes parallel to the boundary on one side."""
    dark = rng.random(n) < rng.uniform(0.0, 0.4)
    levels = np.where(dark, rng.uniform(-0.8, -0.35, n), rng.uniform(-0.3, 0.3, n))
    img = levels[lab] + 0.05 * _smooth_noise(rng, shape, 3) * rng.uniform(0, 1)
    bent = rng.random(n) < rng.uniform(0.0, 0.6)
    if bent.any():  # bend contours: dark bands along iso-lines of a smooth bending field, one band family per grain
        phi = _smooth_noise(rng, shape, max(grain, 4.0)) * rng.uniform(1.0, 4.0) + rng.uniform(0, 1, n)[lab]
        bands = np.cos(np.pi * phi) ** 8
        img -= rng.uniform(0.15, 0.5) * bands * bent[lab]
    fringed = rng.random(n) < rng.uniform(0.0, 0.5)
    if fringed.any():  # thickness fringes: decaying oscillation with the distance from the boundary
        dist = ndi.distance_transform_edt(~edge)
        period = rng.uniform(2.0, 6.0)
        fr = np.cos(2 * np.pi * dist / period) * np.exp(-dist / (period * rng.uniform(0.8, 2.0)))
        img += rng.uniform(0.1, 0.3) * fr * fringed[lab]
    return img


def _particles(rng, shape, scale):
    img = 0.05 * _smooth_noise(rng, shape, 1.0)  # amorphous substrate speckle
    mask = np.zeros(shape, bool)
    for _ in range(int(rng.integers(3, 40))):
        r = rng.uniform(3, 20) * scale
        d = _ellipse(shape, rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), r * rng.uniform(0.6, 1.0), r,
                     rng.uniform(0, np.pi))
        inside = d <= 1.0
        mask |= inside
        thick = np.sqrt(np.clip(1 - d**2, 0, 1))  # projected thickness of a sphere-like particle
        img -= rng.uniform(0.2, 0.8) * thick
    return img, mask


_MAKERS = {"voids": _voids, "loops": _loops, "lines": _lines, "boundaries": _boundaries, "particles": _particles}


def family_image(family: str, rng: np.random.Generator | int | None = None, size: int = 256,
                 scale: float | None = None, dose: float | None = None) -> tuple[np.ndarray, np.ndarray, Draw]:
    """One synthetic image of ``family``: (counts float32 (size, size), mask uint8 class index, the draw).

    ``scale`` (feature size, default log-uniform 0.5-2), ``dose`` (mean counts/px, default log-uniform 20-2000).
    """
    if family not in _MAKERS:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    scale = float(scale if scale is not None else np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    dose = float(dose if dose is not None else np.exp(rng.uniform(np.log(20), np.log(2000))))
    shape = (size, size)
    feat, mask = _MAKERS[family](rng, shape, scale)
    invert = bool(rng.random() < 0.2) and family != "voids"  # occasional bright features (e.g. dark-field-like)
    contrast = rng.uniform(0.4, 1.5)
    intensity = _background(rng, shape) + (-1 if invert else 1) * contrast * feat
    blur = float(rng.uniform(0.3, 2.0))
    intensity = ndi.gaussian_filter(intensity, blur)
    intensity = np.clip(intensity, 0.02, None)
    counts = rng.poisson(intensity * dose).astype(np.float32)
    m = np.where(mask, CLASSES[family], 0).astype(np.uint8)
    return counts, m, Draw(family, scale, dose, blur, invert)


def write_families(out, n_per_family: int, seed: int = 0, size: int = 256,
                   families: tuple[str, ...] = FAMILIES) -> list[Draw]:
    """Write ``images/<family>-<i>.png`` (16-bit) + ``masks/<family>-<i>.png`` (class index) under ``out``."""
    from pathlib import Path

    from PIL import Image

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    draws = []
    for k, fam in enumerate(families):
        rng = np.random.default_rng([seed, k])
        for i in range(n_per_family):
            img, mask, draw = family_image(fam, rng, size)
            lo, hi = float(img.min()), float(img.max())
            u16 = np.round((img - lo) / max(hi - lo, 1e-9) * 65535).astype(np.uint16)
            Image.fromarray(u16).save(out / "images" / f"{fam}-{i}.png")
            Image.fromarray(mask).save(out / "masks" / f"{fam}-{i}.png")
            draws.append(draw)
    return draws


__all__ = ["CLASSES", "CLASS_NAMES", "FAMILIES", "Draw", "family_image", "write_families"]
