"""Labelled (and unlabelled) training sets: find pairs, read, check, resample, normalise, split by image, sample tiles.

Flow: :func:`read_set` (files -> raw arrays + pixel sizes, every problem a :class:`DataError`) ->
:func:`prepare` (resample to the model's pixel size, the one shared normalisation) -> :func:`split_by_image`
(train/validation by *source image*, so no validation pixel was ever seen in training) -> :class:`TileSampler`
(random training crops with scale jitter); validation runs the net as predict does (temzoo.predict.model_maps).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from temzoo.errors import DataError, TemzooError
from temzoo.labelled import Pairing, find_pairs, read_label, sidecar_pixel_sizes, unlabelled_images
from temzoo.preprocess import Normalization, normalize, resample

MAX_PIXELS = 8192 * 8192  # a resampled training image larger than this is a pixel-size mistake


@dataclass
class RawImage:
    """One source image as read from disk (before resampling/normalisation)."""

    name: str  # file stem: the unit of the train/validation split
    path: Path
    image: np.ndarray  # float32 (H, W)
    mask: np.ndarray | None  # uint8 class indices (H, W), None for unlabelled sets
    pixel_size_nm: float | None
    mask_path: Path | None = None


@dataclass
class RawSet:
    """A set of images (with masks for segmentation) and what was learnt reading it."""

    items: list[RawImage]
    class_names: list[str]
    data_hash: str
    description: str
    warnings: list[str] = field(default_factory=list)

    @property
    def pixel_sizes(self) -> list[float | None]:
        return [it.pixel_size_nm for it in self.items]

    @property
    def calibrated(self) -> bool:
        return all(p is not None for p in self.pixel_sizes)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


@dataclass
class Sample:
    """A training-ready image: resampled to the target pixel size and normalised; masks as class indices."""

    name: str
    image: np.ndarray  # float32 (H, W), normalised
    mask: np.ndarray | None  # uint8 (H, W)
    scale: float = 1.0  # factor applied to the original image
    region: str = ""  # set when one image was split into regions


# ------------------------------------------------------------------------------------------------ reading
def _read_image(path: Path) -> tuple[np.ndarray, float | None, list[str]]:
    from temzoo.io import read_micrograph

    mg = read_micrograph(path)
    warnings = []
    if mg.n_frames > 1:
        warnings.append(f"{path.name} holds {mg.n_frames} frames; training uses the first")
    return mg.frame(0), mg.pixel_size_nm, warnings


def _file_digest(h: hashlib._Hash, path: Path) -> None:
    h.update(path.name.encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def read_set(
    images: str | Path,
    masks: str | Path | None = None,
    annotations: str | Path | None = None,
    *,
    pixel_size_nm: float | None = None,
    labelled: bool = True,
) -> RawSet:
    """Read a set of images, and their labels when ``labelled`` (paired by :func:`temzoo.labelled.find_pairs`).

    Labels come from ``masks`` (a folder of mask images matched by file stem, optionally with ``_mask``-like
    suffixes; it may be the images folder itself), or from ``annotations`` (or ``masks``) being a COCO ``.json``
    or a folder of YOLO-seg ``.txt`` files. ``pixel_size_nm`` overrides the files' calibration.
    Raises :class:`DataError` for no pairs, size mismatches and unusable masks.
    """
    images = Path(images)
    h = hashlib.sha256()
    if labelled:
        pairing = find_pairs(images, annotations if annotations is not None else masks)
    else:
        pairing = Pairing([(p, None) for p in unlabelled_images(images)], "unlabelled images")
        if not pairing.pairs:
            raise DataError(f"no readable images in {images}; temzoo reads PNG, JPEG, TIFF, DM3/DM4, EMD, SER, MRC")
    for f in pairing.label_files:
        _file_digest(h, f)
    warnings = list(pairing.warnings)
    sidecar = sidecar_pixel_sizes(images)
    items = [_read_item(img_path, lab, h, warnings, pixel_size_nm, sidecar) for img_path, lab in pairing.pairs]
    if len({it.name for it in items}) != len(items):
        raise DataError(f"two images in {images} share a file stem; rename them so each stem is unique")
    class_names = pairing.class_names
    if labelled:
        top = max(int(it.mask.max()) for it in items if it.mask is not None)
        if top >= len(class_names):
            class_names = ["background"] + [f"class{i}" for i in range(1, top + 1)] if top > 1 else class_names
        if all(int(it.mask.max()) == 0 for it in items if it.mask is not None):
            warnings.append("every mask is empty (no foreground pixels): the model can only learn 'background'")
    px_known = [it.pixel_size_nm for it in items if it.pixel_size_nm is not None]
    if px_known and len(px_known) != len(items):
        warnings.append("some images carry a pixel size and some do not; give --pixel-size-nm to set one for all")
    desc = f"{len(items)} {pairing.kind} from {images.name}"
    return RawSet(items=items, class_names=class_names, data_hash=h.hexdigest(), description=desc, warnings=warnings)


def _read_item(img_path: Path, lab, h, warnings: list[str], pixel_size_nm: float | None,
               sidecar: dict[str, float]) -> RawImage:
    """One image (first frame) and its label; the files go into the set's hash ``h``."""
    try:
        img, px, w = _read_image(img_path)
    except TemzooError as err:
        raise DataError(f"cannot read training image {img_path.name}: {err}") from None
    warnings += w
    _file_digest(h, img_path)
    mask = None if lab is None else read_label(lab, img.shape, img_path.name)
    if isinstance(lab, Path):
        _file_digest(h, lab)
    if pixel_size_nm is not None:
        px = float(pixel_size_nm)
    elif px is None:
        px = sidecar.get(img_path.stem)
    return RawImage(name=img_path.stem, path=img_path, image=img, mask=mask, pixel_size_nm=px,
                    mask_path=lab if isinstance(lab, Path) else None)


# ------------------------------------------------------------------------------------------ preparation
def prepare(raw: RawSet, target_pixel_size_nm: float | None, norm: Normalization | None = None,
            downsample: float = 1.0) -> list[Sample]:
    """Resample each image to ``target_pixel_size_nm`` (masks with nearest neighbour) and normalise it.

    Images without a pixel size (or with no target) are shrunk by ``downsample`` instead. Returns new arrays.
    """
    samples = []
    for it in raw.items:
        if target_pixel_size_nm and it.pixel_size_nm:
            factor = it.pixel_size_nm / target_pixel_size_nm
        else:
            factor = 1.0 / downsample
        h, w = it.image.shape
        if h * w * factor**2 > MAX_PIXELS:
            raise DataError(
                f"{it.name} would become {int(w * factor)}x{int(h * factor)} px after resampling to the working pixel "
                f"size ({factor:.3g}x); check --pixel-size-nm or choose a base trained nearer this scale"
            )
        img = resample(it.image, factor, order="bilinear") if abs(factor - 1) > 1e-6 else it.image
        mask = None
        if it.mask is not None:
            mask = (resample(it.mask.astype(np.float32), factor, order="nearest").astype(np.uint8)
                    if abs(factor - 1) > 1e-6 else it.mask.copy())
        samples.append(Sample(name=it.name, image=normalize(img, norm), mask=mask, scale=factor))
    return samples


def split_by_image(
    samples: list[Sample], val_fraction: float = 0.25, seed: int = 0, val_names: list[str] | None = None
) -> tuple[list[Sample], list[Sample], str]:
    """Split into (train, validation, description) by source image, never by tile.

    ``val_names`` pins the validation images (by stem). With a single image there is nothing to split by, so the
    image is cut into two disjoint regions (the bottom quarter validates); the description says so.
    """
    names = [s.name for s in samples]
    if val_names:
        unknown = sorted(set(val_names) - set(names))
        if unknown:
            raise DataError(f"validation image(s) {', '.join(unknown)} are not in the labelled set")
        val = [s for s in samples if s.name in set(val_names)]
        train = [s for s in samples if s.name not in set(val_names)]
        if not train:
            raise DataError("every labelled image is in the validation set; leave at least one for training")
        return train, val, f"validation images pinned: {', '.join(s.name for s in val)}"
    if len(samples) == 1 or val_fraction <= 0:
        if len(samples) > 1:
            return list(samples), [], "no validation split (val_fraction 0): early stopping uses the training loss"
        s = samples[0]
        h = s.image.shape[0]
        cut = max(1, int(round(h * (1 - max(val_fraction, 0.25)))))
        if h - cut < 16:
            return [s], [], "one small image: no validation region (early stopping uses the training loss)"
        top = Sample(s.name, s.image[:cut].copy(), None if s.mask is None else s.mask[:cut].copy(), s.scale, "top")
        bottom = Sample(s.name, s.image[cut:].copy(), None if s.mask is None else s.mask[cut:].copy(), s.scale,
                        "bottom")
        return [top], [bottom], (f"one labelled image: rows 0..{cut - 1} train, rows {cut}..{h - 1} validate "
                                 "(disjoint regions)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    n_val = min(len(samples) - 1, max(1, int(round(len(samples) * val_fraction))))
    val_idx = set(order[:n_val].tolist())
    train = [s for i, s in enumerate(samples) if i not in val_idx]
    val = [s for i, s in enumerate(samples) if i in val_idx]
    return train, val, (f"{len(train)} training images ({', '.join(s.name for s in train)}), {len(val)} validation "
                        f"images ({', '.join(s.name for s in val)}), split by image (seed {seed})")


SIDES = ("top", "bottom", "left", "right")  # where a region-validation band can sit


def split_by_region(samples: list[Sample], fraction: float = 0.2, seed: int = 0,
                    min_px: int = 16) -> tuple[list[Sample], list[Sample], str]:
    """Every image trains and every image validates: a band of ``fraction`` of each image (at a seeded edge: top,
    bottom, left or right) is held out for validation, the rest (one contiguous rectangle) trains.

    With a handful of labelled images a whole validation image wastes a quarter to a half of the labels, and model
    selection then follows the noise of that one image (a different contrast never trains, or never validates); a
    band per image keeps the pixels disjoint (tiles are cut inside the training rectangle only) while validation
    sees every kind of image. The band is the edge whose foreground fraction is closest to its image's (seeded order
    breaks ties): a band of sparse objects that happens to hold none would score "nothing predicted" as perfect and
    steer model selection. Images too small for a band of ``min_px`` train whole.
    """
    rng = np.random.default_rng(seed)
    train, val, parts = [], [], []
    for s in samples:
        side = _representative_side(s, fraction, [SIDES[int(i)] for i in rng.permutation(4)])
        axis = 0 if side in ("top", "bottom") else 1
        n = s.image.shape[axis]
        band = int(round(n * fraction))
        if band < min_px or n - band < min_px:
            train.append(s)
            parts.append(f"{s.name} (whole, too small)")
            continue
        at_start = side in ("top", "left")
        vs = slice(0, band) if at_start else slice(n - band, n)
        ts = slice(band, n) if at_start else slice(0, n - band)

        def cut(a: np.ndarray | None, sl: slice) -> np.ndarray | None:
            if a is None:
                return None
            return (a[sl] if axis == 0 else a[:, sl]).copy()

        train.append(Sample(s.name, cut(s.image, ts), cut(s.mask, ts), s.scale, f"all but {side} band"))
        val.append(Sample(s.name, cut(s.image, vs), cut(s.mask, vs), s.scale, f"{side} band"))
        parts.append(f"{s.name} ({side})")
    listed = ", ".join(parts[:12]) + (f", ... ({len(parts)} images)" if len(parts) > 12 else "")
    return train, val, f"every image trains; a {fraction:.0%} band of each validates (disjoint pixels): {listed}"


def _representative_side(s: Sample, fraction: float, order: list[str]) -> str:
    """The first side in ``order`` whose band's foreground fraction is closest to the whole image's (the first side
    when there is no mask: denoising)."""
    if s.mask is None:
        return order[0]
    fg = s.mask > 0
    whole = float(fg.mean())

    def gap(side: str) -> float:
        axis = 0 if side in ("top", "bottom") else 1
        band = max(1, int(round(fg.shape[axis] * fraction)))
        sl = slice(0, band) if side in ("top", "left") else slice(fg.shape[axis] - band, fg.shape[axis])
        return abs(float((fg[sl] if axis == 0 else fg[:, sl]).mean()) - whole)

    return min(order, key=gap)  # min keeps the first of equal gaps: the seeded order decides ties


# ------------------------------------------------------------------------------------------------- tiles
def effective_tile(samples: list[Sample], tile_size: int, stride: int) -> int:
    """The tile edge used: ``tile_size`` rounded down to the net's stride, no larger than the smallest image."""
    smallest = min(min(s.image.shape) for s in samples)
    t = min(tile_size, smallest)
    return max(stride, (t // stride) * stride)


class TileSampler:
    """Random training crops (with scale jitter) from the training images only.

    Tiles are drawn with probability proportional to image area, so big images are not under-sampled.
    """

    def __init__(self, samples: list[Sample], tile: int, scale_jitter: float = 0.0, seed: int = 0) -> None:
        if not samples:
            raise DataError("no training images left after the split; add more labelled images")
        self.tile = tile
        self.scale_jitter = float(scale_jitter)
        self.rng = np.random.default_rng(seed)
        need = int(math.ceil(tile * (1 + self.scale_jitter))) + 1
        self.images, self.masks = [], []
        for s in samples:
            ph, pw = max(0, need - s.image.shape[0]), max(0, need - s.image.shape[1])
            pad = ((0, ph), (0, pw))
            self.images.append(np.pad(s.image, pad, mode="reflect") if ph or pw else s.image)
            if s.mask is not None:
                self.masks.append(np.pad(s.mask, pad, mode="reflect") if ph or pw else s.mask)
        self.names = [s.name for s in samples]
        area = np.array([im.size for im in self.images], dtype=np.float64)
        self.p = area / area.sum()
        self.dihedral_in_crop = False  # this sampler leaves the dihedral transforms to temzoo.train.augment

    @property
    def area_tiles(self) -> float:
        """How many tiles cover the training images once."""
        return float(sum(im.size for im in self.images)) / self.tile**2

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` tiles: images ``(n, tile, tile)`` float32 and masks ``(n, tile, tile)`` uint8 (None if unlabelled)."""
        from temzoo.preprocess import resize

        t = self.tile
        xs, ms = [], []
        for _ in range(n):
            i = int(self.rng.choice(len(self.images), p=self.p))
            img = self.images[i]
            zoom = 1.0 + self.rng.uniform(-self.scale_jitter, self.scale_jitter) if self.scale_jitter else 1.0
            c = min(int(round(t / zoom)), *img.shape)
            y = int(self.rng.integers(0, img.shape[0] - c + 1))
            x = int(self.rng.integers(0, img.shape[1] - c + 1))
            crop = img[y:y + c, x:x + c]
            xs.append(resize(crop, (t, t)) if c != t else crop)
            if self.masks:
                mc = self.masks[i][y:y + c, x:x + c]
                ms.append(resize(mc.astype(np.float32), (t, t), order="nearest").astype(np.uint8) if c != t else mc)
        return np.stack(xs).astype(np.float32), (np.stack(ms) if ms else None)


class DeviceTileSampler(TileSampler):
    """:class:`TileSampler` with the images held on a torch device (a GPU) and every batch cut there.

    Crop position, scale jitter and one of the 8 dihedral transforms per tile are folded into one affine sampling
    grid, so a batch costs one ``grid_sample`` per source image present (bilinear for images, nearest for masks)
    instead of a Python loop of crops, resizes and rotations on the CPU. The random draws stay on the host's
    seeded generator (a few numbers per tile), so nothing waits on the device and a resumed run draws the same tiles.
    """

    def __init__(self, samples: list[Sample], tile: int, scale_jitter: float = 0.0, seed: int = 0,
                 device=None, dihedral: bool = True) -> None:
        import torch

        super().__init__(samples, tile, scale_jitter, seed)
        self.device = torch.device(device or "cpu")
        self.dihedral_in_crop = dihedral
        self.images = [torch.from_numpy(np.ascontiguousarray(im, np.float32)).to(self.device)[None, None]
                       for im in self.images]
        self.masks = [torch.from_numpy(m.astype(np.float32)).to(self.device)[None, None] for m in self.masks]
        self._sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in self.images]

    @property
    def area_tiles(self) -> float:
        return float(sum(h * w for h, w in self._sizes)) / self.tile**2

    @staticmethod
    def device_bytes(samples: list[Sample]) -> int:
        """Device memory the sampler will hold for ``samples``: float32 images and float32 masks (grid_sample
        takes floating point only), before the small padding of images narrower than a tile."""
        return sum(s.image.size * (8 if s.mask is not None else 4) for s in samples)

    def _thetas(self, idx: np.ndarray) -> np.ndarray:
        """Affine maps ``(n, 2, 3)`` from output-tile coordinates to each source image's, in grid_sample's [-1, 1]
        units (align_corners False): crop of ``c = tile / zoom`` px at a random corner, times a dihedral transform."""
        n, t = len(idx), self.tile
        zoom = 1.0 + self.rng.uniform(-self.scale_jitter, self.scale_jitter, n) if self.scale_jitter else np.ones(n)
        theta = np.zeros((n, 2, 3), np.float32)
        for j, i in enumerate(idx):
            h, w = self._sizes[i]
            c = min(int(round(t / zoom[j])), h, w)
            y = int(self.rng.integers(0, h - c + 1))
            x = int(self.rng.integers(0, w - c + 1))
            # A signed permutation of the output axes: the 8 symmetries of the square (rotations and flips).
            k = int(self.rng.integers(0, 8)) if self.dihedral_in_crop else 0
            m = np.array([[0, 1], [1, 0]] if k & 4 else [[1, 0], [0, 1]], np.float32)
            m = m * np.array([[-1 if k & 1 else 1], [-1 if k & 2 else 1]], np.float32)
            theta[j, :, :2] = m * np.array([[c / w], [c / h]], np.float32)
            theta[j, :, 2] = [(2 * x + c) / w - 1, (2 * y + c) / h - 1]  # the crop's centre
        return theta

    def sample(self, n: int):
        """``n`` tiles as tensors on the device: images ``(n, 1, t, t)`` float32, masks ``(n, 1, t, t)`` int64 (None if
        unlabelled); tiles come grouped by source image (their order carries no meaning)."""
        import torch
        import torch.nn.functional as F

        t = self.tile
        idx = np.sort(self.rng.choice(len(self.images), size=n, p=self.p))
        theta = torch.from_numpy(self._thetas(idx)).to(self.device, non_blocking=True)
        grid = F.affine_grid(theta, [n, 1, t, t], align_corners=False)
        xs, ms = [], []
        for i in np.unique(idx):
            a, b = int(np.searchsorted(idx, i)), int(np.searchsorted(idx, i, side="right"))
            g = grid[a:b].reshape(1, (b - a) * t, t, 2)  # one call per source image for all its tiles
            xs.append(F.grid_sample(self.images[i], g, mode="bilinear", align_corners=False).view(b - a, 1, t, t))
            if self.masks:
                ms.append(F.grid_sample(self.masks[i], g, mode="nearest", align_corners=False).view(b - a, 1, t, t))
        x = torch.cat(xs)
        return x, (torch.cat(ms).long() if ms else None)

