"""A labelled set on disk as the Label page writes it and fine-tuning reads it: ``images/<name>.png`` with
``masks/<name>.png`` (0/255) matched by stem, plus ``labelset.json`` (pixel size and source per image).

Images are stored as 16-bit PNG (min-max scaled) so HRTEM contrast survives; training normalises each image anyway.
Also: turning canvas strokes into a full-size mask, a threshold starting mask.
COCO / YOLO-seg uploads are rasterised by :mod:`temzoo.io.masks` and then stored here as plain mask pairs.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from temzoo.errors import DataError

META_FILE = "labelset.json"
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class LabelPair:
    name: str
    image: Path
    mask: Path
    pixel_size_nm: float | None
    source: str | None


def safe_name(name: str) -> str:
    """A file stem that is safe as a path component (upload names are never used as paths unsanitised)."""
    stem = _NAME.sub("-", Path(str(name)).stem).strip("-.")[:60]
    return stem or "image"


def _read_meta(set_dir: Path) -> dict:
    try:
        return json.loads((set_dir / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"items": {}}


def _write_meta(set_dir: Path, meta: dict) -> None:
    tmp = set_dir / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp, set_dir / META_FILE)


def _to_u16(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3:  # RGB(A) uploads: equal-channel TEM images stored as colour
        a = a[..., :3].mean(axis=-1)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, np.uint16)
    return np.round((a - lo) / (hi - lo) * 65535).astype(np.uint16)


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """0/255 uint8 from a bool, 0/1 or 0/255 mask (RGB masks: any channel set)."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., :3].max(axis=-1)
    return np.where(m > 0, 255, 0).astype(np.uint8)


def add_pair(set_dir: str | Path, image: np.ndarray, mask: np.ndarray, name: str,
             pixel_size_nm: float | None = None, source: str | None = None) -> LabelPair:
    """Save an image/mask pair (a new name if ``name`` is taken); the mask must match the image's size."""
    from PIL import Image

    img = np.asarray(image)
    m = binary_mask(mask)
    if img.ndim not in (2, 3) or img.shape[:2] != m.shape[:2]:
        raise DataError(f"mask size {m.shape[1]}x{m.shape[0]} does not match image size "
                        f"{img.shape[1] if img.ndim > 1 else '?'}x{img.shape[0]}; use a mask of the same size")
    if min(m.shape[:2]) < 16:
        raise DataError(f"image {m.shape[1]}x{m.shape[0]} is too small to train on; use at least 16x16 pixels")
    set_dir = Path(set_dir)
    (set_dir / "images").mkdir(parents=True, exist_ok=True)
    (set_dir / "masks").mkdir(parents=True, exist_ok=True)
    stem, n = safe_name(name), 2
    base = stem
    # Taken means either file: an image the user left there without a mask is theirs, not ours to replace.
    while (set_dir / "masks" / f"{stem}.png").exists() or (set_dir / "images" / f"{stem}.png").exists():
        stem, n = f"{base}-{n}", n + 1
    Image.fromarray(_to_u16(img)).save(set_dir / "images" / f"{stem}.png")
    Image.fromarray(m[..., 0] if m.ndim == 3 else m).save(set_dir / "masks" / f"{stem}.png")
    meta = _read_meta(set_dir)
    meta.setdefault("items", {})[stem] = {"pixel_size_nm": pixel_size_nm, "source": source}
    _write_meta(set_dir, meta)
    return LabelPair(stem, set_dir / "images" / f"{stem}.png", set_dir / "masks" / f"{stem}.png", pixel_size_nm, source)


def list_pairs(set_dir: str | Path) -> list[LabelPair]:
    """Image/mask pairs of a set (ours or any ``images/`` + ``masks/`` folder pair, paired as training pairs them),
    sorted by name."""
    from temzoo.labelled import mask_pairs, natural_order

    set_dir = Path(set_dir)
    if not (set_dir / "images").is_dir():
        return []
    items = _read_meta(set_dir).get("items", {})
    out = []
    for img, m in sorted(mask_pairs(set_dir / "images", set_dir / "masks"), key=lambda pm: natural_order(pm[0])):
        info = items.get(img.stem, {})
        out.append(LabelPair(img.stem, img, m, info.get("pixel_size_nm"), info.get("source")))
    return out


def remove_pair(set_dir: str | Path, name: str) -> None:
    set_dir = Path(set_dir)
    stem = safe_name(name)
    (set_dir / "masks" / f"{stem}.png").unlink(missing_ok=True)
    (set_dir / "images" / f"{stem}.png").unlink(missing_ok=True)
    meta = _read_meta(set_dir)
    meta.get("items", {}).pop(stem, None)
    if (set_dir / META_FILE).exists():
        _write_meta(set_dir, meta)


def common_pixel_size(pairs: list[LabelPair]) -> float | None:
    """The set's pixel size when all images agree (within 1 %); None if unknown or mixed."""
    sizes = [p.pixel_size_nm for p in pairs]
    if not sizes or any(s is None for s in sizes):
        return None
    lo, hi = min(sizes), max(sizes)
    return float(np.median(sizes)) if hi <= lo * 1.01 else None


def strokes_to_mask(rgba: np.ndarray | None, shape: tuple[int, int], base: np.ndarray | None = None) -> np.ndarray:
    """Full-size bool mask from canvas strokes drawn at display size.

    Label strokes are red, eraser strokes blue, both half-transparent: where strokes overlap, the later one dominates
    the composited colour, so "red > blue" means labelled. Unstroked pixels keep ``base`` (e.g. a threshold start).
    """
    from PIL import Image

    h, w = shape
    out = np.zeros((h, w), bool) if base is None else np.asarray(base, bool).copy()
    if rgba is None:
        return out
    a = np.asarray(rgba)
    if a.ndim != 3 or a.shape[2] < 4:
        raise DataError("the drawing could not be read (expected an RGBA canvas image)")
    r, b, alpha = (a[..., 0].astype(np.int16), a[..., 2].astype(np.int16), a[..., 3])
    touched = alpha > 0
    label = touched & (r > b)
    # Nearest-neighbour scaling back to the micrograph's grid (the canvas is a downscaled view).
    def up(x: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(x.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 127

    t, lab = up(touched), up(label)
    out[t] = lab[t]
    return out


def threshold_mask(image: np.ndarray, invert: bool = False) -> np.ndarray:
    """An Otsu-threshold starting mask (bright foreground, or dark with ``invert``), to refine with brush/eraser."""
    from skimage.filters import threshold_otsu

    a = np.nan_to_num(np.asarray(image, np.float64))
    if a.max() <= a.min():
        return np.zeros(a.shape, bool)
    m = a > threshold_otsu(a)
    return ~m if invert else m


def prediction_mask(probability: np.ndarray, threshold: float, shape: tuple[int, int]) -> np.ndarray:
    """A starting mask from a model's prediction: foreground probability above ``threshold`` (for class
    probabilities ``(C, H, W)``: 1 - background), on the frame's grid ``shape``; to correct with brush/eraser."""
    p = np.asarray(probability, np.float32)
    fg = 1.0 - p[0] if p.ndim == 3 else p
    if fg.shape != tuple(shape):
        raise DataError(f"the prediction is {fg.shape[1]}x{fg.shape[0]} px but the image is {shape[1]}x{shape[0]}; "
                        "segment this frame again")
    return fg > float(threshold)


def find_sets(extra: list[str | Path] = ()) -> dict[str, Path]:
    """Labelled sets on disk: ``extra`` folders plus the shared data's ``labeled/*`` sets (name -> folder)."""
    from temzoo import paths

    out: dict[str, Path] = {}
    for d in extra:
        out[Path(d).name] = Path(d)
    shared = paths.shared_data_dir()
    if shared is not None and (shared / "labeled").is_dir():
        for d in sorted((shared / "labeled").iterdir()):
            if (d / "images").is_dir() and (d / "masks").is_dir():
                out[f"shared: {d.name}"] = d
    return out


def import_uploads(set_dir: str | Path, images: dict[str, bytes], labels: dict[str, bytes],
                   pixel_size_nm: float | None = None) -> tuple[list[LabelPair], list[str]]:
    """Add uploaded images with their labels, matched by file stem: mask files (PNG/TIFF/...), a COCO json
    (``file_name`` stems) or YOLO-seg ``.txt`` files. Returns (pairs added, one-line problems for what was skipped).
    Upload names are only used as sanitised stems, never as paths."""
    import tempfile

    from temzoo.errors import TemzooError
    from temzoo.io import read_bytes, safe_filename
    from temzoo.io.masks import read_coco, read_mask, read_yolo_seg

    added: list[LabelPair] = []
    problems: list[str] = []
    by_stem: dict[str, tuple[str, bytes]] = {}
    coco: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="temzoo-labels-") as tmp:
        for fname, data in labels.items():
            p = Path(tmp) / safe_filename(fname)
            p.write_bytes(data)
            if p.suffix.lower() == ".json":
                try:
                    masks, _ = read_coco(p)
                    coco.update({Path(k).stem: v for k, v in masks.items()})
                except TemzooError as err:
                    problems.append(str(err))
            else:
                by_stem[Path(fname).stem] = (str(p), fname)
        for fname, data in images.items():
            stem = Path(fname).stem
            try:
                mg = read_bytes(data, fname)[0]
                img = mg.frame(0)
                if stem in coco:
                    mask = coco[stem]
                elif stem in by_stem and by_stem[stem][1].lower().endswith(".txt"):
                    mask = read_yolo_seg(by_stem[stem][0], img.shape[:2])
                elif stem in by_stem:
                    mask = read_mask(by_stem[stem][0])
                else:
                    problems.append(f"{safe_filename(fname)}: no mask, COCO entry or YOLO file with the same name")
                    continue
                px = pixel_size_nm or (mg.pixel_size_nm if mg.calibrated else None)
                added.append(add_pair(set_dir, img, mask, stem, px, source=safe_filename(fname)))
            except TemzooError as err:
                problems.append(f"{safe_filename(fname)}: {err}")
    return added, problems
