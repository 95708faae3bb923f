"""Tiny labelled sets written as real files for the training tests (bright discs on a noisy background)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def disc_image(size: int, seed: int, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 micrograph-like image with ``n`` bright discs and its 0/1 mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), bool)
    for _ in range(n):
        cy, cx = rng.uniform(0.15, 0.85, 2) * size
        r = rng.uniform(0.06, 0.14) * size
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    img = 60 + 120 * mask + rng.normal(0, 18, (size, size))
    return np.clip(img, 0, 255).astype(np.uint8), mask.astype(np.uint8)


def write_disc_set(folder: Path, n: int = 4, size: int = 96, seed: int = 0, mask_suffix: str = "") -> tuple[Path, Path]:
    """``folder/images/k.png`` + ``folder/masks/k{suffix}.png`` (0/255); returns (images, masks) folders."""
    from PIL import Image

    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        img, m = disc_image(size, seed + k)
        Image.fromarray(img).save(images / f"img{k}.png")
        Image.fromarray(m * 255).save(masks / f"img{k}{mask_suffix}.png")
    return images, masks


def write_three_class_set(folder: Path, n: int = 3, size: int = 48) -> tuple[Path, Path]:
    """:func:`write_disc_set` with index masks: discs (parts) in the left half are class 1, in the right half 2."""
    from PIL import Image

    images, masks = write_disc_set(folder, n=n, size=size)
    for p in masks.iterdir():
        m = np.asarray(Image.open(p)) > 0
        idx = m.astype(np.uint8)
        idx[:, size // 2:][m[:, size // 2:]] = 2
        Image.fromarray(idx).save(p)
    return images, masks
