"""Tiny synthetic labelled sets (bright disks on noise) for job and page tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def disk_image(size: int = 64, seed: int = 0, n_disks: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image with bright disks and its exact mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), bool)
    for _ in range(n_disks):
        cy, cx = rng.integers(10, size - 10, 2)
        r = rng.integers(5, 10)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    img = 0.2 + 0.6 * mask + rng.normal(0, 0.08, (size, size))
    return img.astype(np.float32), mask


def make_disk_set(folder: str | Path, n: int = 4, size: int = 64, pixel_size_nm: float | None = 0.5) -> Path:
    """``folder/images`` + ``folder/masks`` with ``n`` pairs, written the way the Label page writes them."""
    from temzoo.train import labelset

    folder = Path(folder)
    for i in range(n):
        img, mask = disk_image(size, seed=i)
        labelset.add_pair(folder, img, mask, f"disk{i}", pixel_size_nm, source="synthetic")
    return folder


def stop_jobs(root: str | Path | None = None) -> None:
    """Teardown: cancel (then terminate) any job still active under ``root``, so no test leaves a process behind."""
    from temzoo.train import jobs

    for st in jobs.list_jobs(root):
        if st.active:
            jobs.cancel(st.dir, wait_s=10)
