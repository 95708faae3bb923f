"""Pad to the network's stride, cut overlapping tiles, and merge tile outputs with blended (feathered) weights.

A fully convolutional net sees less context near a tile's edge, so neighbouring tiles overlap and their outputs are
mixed with weights that fall off linearly inside the overlap: seams disappear and the sum of weights is never zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def padded_size(n: int, stride: int) -> int:
    """Smallest multiple of ``stride`` that is >= ``n``."""
    return int(math.ceil(n / stride) * stride)


def pad_to_stride(image, stride: int):
    """Reflect-pad the last two axes at the bottom/right up to multiples of ``stride``.

    Takes a NumPy array or a tensor (padded on its own device by one gather). Returns the padded array (a new array;
    the input is untouched) and the original ``(H, W)`` to crop back to. Reflection keeps image statistics at the
    border (zeros would look like a dark edge to the net).
    """
    h, w = image.shape[-2:]
    ph, pw = padded_size(h, stride) - h, padded_size(w, stride) - w
    if ph == 0 and pw == 0:
        return image, (h, w)
    # 'reflect' needs pad < size; tiny images fall back to 'symmetric' which repeats the edge pixel.
    mode = "reflect" if ph < h and pw < w else "symmetric"
    if not isinstance(image, np.ndarray) and hasattr(image, "index_select"):
        import torch

        # np.pad of the index ranges says which source row/column each padded one copies: the same rule as below.
        iy = torch.from_numpy(np.pad(np.arange(h), (0, ph), mode=mode)).to(image.device)
        ix = torch.from_numpy(np.pad(np.arange(w), (0, pw), mode=mode)).to(image.device)
        return image.index_select(-2, iy).index_select(-1, ix), (h, w)
    pad = [(0, 0)] * (image.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(image, pad, mode=mode), (h, w)


def tile_starts(length: int, tile: int, overlap: int, stride: int = 1) -> list[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile`` px overlapping by at least ``overlap`` px.

    Offsets are multiples of ``stride``: a strided CNN is shift-equivariant only for such shifts, so a tile cut
    elsewhere would see a different sampling phase and disagree with its neighbour in the overlap.
    """
    if length <= tile:
        return [0]
    step = max(stride, tile - overlap)
    n = max(2, int(math.ceil((length - overlap) / step)))
    # Evenly spread so that every overlap is about the same (no thin last tile); the last tile ends at the edge.
    starts = [int(round(i * (length - tile) / (n - 1) / stride)) * stride for i in range(n)]
    starts[-1] = length - tile
    return sorted(set(starts))


@dataclass(frozen=True)
class TileGrid:
    """Where tiles sit in a (padded) image of ``shape``; each tile is ``tile_h x tile_w``."""

    shape: tuple[int, int]
    tile_h: int
    tile_w: int
    overlap: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @classmethod
    def for_image(cls, shape: tuple[int, int], tile: int, overlap: int, stride: int) -> TileGrid:
        """Tiles of at most ``tile`` px for a padded image ``shape`` (multiples of ``stride``).

        The tile size is then shrunk to the smallest stride multiple that still covers the axis with the same number
        of tiles: a 2048 px axis with 1024 px tiles and 32 px overlap gets 3 tiles of 704 px (3 % extra pixels)
        rather than 3 of 1024 px (50 % extra).
        """
        h, w = shape
        tile = max(stride, padded_size(tile, stride))
        overlap = max(0, min(overlap, tile // 2))
        th, ys = _axis(h, tile, overlap, stride)
        tw, xs = _axis(w, tile, overlap, stride)
        return cls((h, w), th, tw, overlap, tuple(ys), tuple(xs))

    @property
    def boxes(self) -> list[tuple[int, int]]:
        """Top-left corners ``(y, x)`` of all tiles, row by row."""
        return [(y, x) for y in self.ys for x in self.xs]

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def weight(self, y: int, x: int) -> np.ndarray:
        """Blend weights of the tile at ``(y, x)``: 1 inside, linear ramps on sides that have a neighbour."""
        wy, wx = self.ramps(y, x)
        return np.outer(wy, wx).astype(np.float32)

    def ramps(self, y: int, x: int) -> tuple[np.ndarray, np.ndarray]:
        """The 1D factors ``(wy, wx)`` of :meth:`weight` (float32; the weight is their outer product)."""
        return (_ramp(self.tile_h, self.overlap, y > 0, y + self.tile_h < self.shape[0]),
                _ramp(self.tile_w, self.overlap, x > 0, x + self.tile_w < self.shape[1]))


def _axis(length: int, tile: int, overlap: int, stride: int) -> tuple[int, list[int]]:
    if length <= tile:
        return length, [0]
    n = int(math.ceil((length - overlap) / (tile - overlap)))
    t = min(length, padded_size(int(math.ceil((length + (n - 1) * overlap) / n)), stride))
    return t, tile_starts(length, t, overlap, stride)


def _ramp(n: int, overlap: int, rise: bool, fall: bool) -> np.ndarray:
    w = np.ones(n, dtype=np.float32)
    if overlap <= 0:
        return w
    # Zero-ish over the outer quarter of the overlap (the pixels there lack context in this tile), then linear;
    # strictly positive so that the weight sum is never 0, even at an image corner.
    m = overlap // 4
    r = np.clip((np.arange(overlap, dtype=np.float32) + 0.5 - m) / max(overlap - 2 * m, 1), 1e-3, 1.0)
    if rise:
        w[:overlap] = np.minimum(w[:overlap], r)
    if fall:
        w[-overlap:] = np.minimum(w[-overlap:], r[::-1])
    return w


def device_weight(grid: TileGrid, y: int, x: int, device):
    """:meth:`TileGrid.weight` built on ``device`` as the outer product of its two 1D ramps: a few kB cross to a GPU
    instead of a tile-sized host array (nine 1400^2 of them, ~2 ms of host time each here, for a 4096^2 frame).
    The same float32 products, bit for bit."""
    import torch

    wy, wx = (torch.from_numpy(r).to(device) for r in grid.ramps(y, x))
    return torch.outer(wy, wx)


class BlendMerger:
    """Accumulate weighted tile outputs ``(C, th, tw)`` into ``(C, H, W)`` maps; :meth:`result` divides by weights.

    The accumulators are tensors on ``device`` (the model's): on a GPU the merge never leaves it."""

    def __init__(self, grid: TileGrid, channels: int, device=None) -> None:
        import torch

        self.grid = grid
        self.device = torch.device(device or "cpu")
        self.sum = torch.zeros((channels, *grid.shape), dtype=torch.float32, device=self.device)
        self.weights = torch.zeros(grid.shape, dtype=torch.float32, device=self.device)
        self._cache: dict = {}

    def _weight(self, y: int, x: int):
        import torch

        # Only 9 distinct weight tiles exist (corners, edges, interior): compute each once. On the CPU with NumPy
        # (measured as fast as torch there); on a GPU on the device itself (see device_weight).
        g = self.grid
        key = (y > 0, y + g.tile_h < g.shape[0], x > 0, x + g.tile_w < g.shape[1])
        if key not in self._cache:
            self._cache[key] = (torch.from_numpy(g.weight(y, x)) if self.device.type == "cpu"
                                else device_weight(g, y, x, self.device))
        return self._cache[key]

    def add(self, y: int, x: int, values) -> None:
        """Add one tile's ``(C, th, tw)`` output (a tensor, or a NumPy array) at ``(y, x)``."""
        import torch

        if isinstance(values, np.ndarray):
            values = torch.from_numpy(values)
        w = self._weight(y, x)
        th, tw = self.grid.tile_h, self.grid.tile_w
        self.sum[:, y:y + th, x:x + tw].addcmul_(values.to(self.device, torch.float32), w)
        self.weights[y:y + th, x:x + tw] += w

    def result(self):
        """The blended ``(C, H, W)`` tensor (the accumulator itself, divided in place: no full-size copy)."""
        self.sum /= self.weights
        return self.sum
