"""The labelled set: the ONE reader of an images folder and its labels (training, ``evaluate``, the Label page and
the recipes all pair files here, so what one accepts the others accept).

Labels are a folder of mask images paired by file stem (``a.png`` <-> ``a.png``, or with a suffix drawing tools
add: ``a_mask.png``; the folder may be the images folder itself), a COCO ``.json`` of polygons/RLE, or a folder of
YOLO-seg ``.txt`` files. Mask formats are read by :mod:`temzoo.io.masks`; every problem is one :class:`DataError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from temzoo.errors import DataError
from temzoo.io.masks import MASK_SUFFIXES, read_coco, read_mask, read_text_file, read_yolo_seg

# Mask files may be named like the image or with one of these suffixes on the stem (drawing tools add them).
MASK_STEM_SUFFIXES = ("", "_mask", "-mask", ".mask", "_label", "_labels", "_gt")
LABEL_KINDS = "a masks folder, a COCO .json file or a YOLO-seg folder"

Label = Path | np.ndarray  # a mask/YOLO file, or a mask already decoded (COCO)


def image_extensions() -> set[str]:
    from temzoo.io import SUPPORTED_EXTENSIONS

    return {e.lower() for e in SUPPORTED_EXTENSIONS}


def natural_order(p: Path) -> tuple[int, str]:
    """``2.png`` before ``10.png`` (the order the Label page and the recipes' held-out splits use)."""
    return len(p.stem), p.stem


def looks_like_mask(stem: str) -> bool:
    return any(stem.endswith(s) for s in MASK_STEM_SUFFIXES if s)


def image_files(folder: str | Path) -> list[Path]:
    """The micrographs in ``folder`` (every format temzoo reads; hidden files skipped), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"images folder {folder} does not exist; give a folder of micrographs")
    exts = image_extensions()
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts
                  and not p.name.startswith("."))


def unlabelled_images(folder: str | Path) -> list[Path]:
    """The images of a folder that are not themselves masks (``a_mask.png`` beside ``a.png``)."""
    return [p for p in image_files(folder) if not looks_like_mask(p.stem)]


def mask_pairs(images: str | Path, masks: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs matched by stem (with :data:`MASK_STEM_SUFFIXES`); images without a mask are left out."""
    images, masks = Path(images), Path(masks)
    if not masks.is_dir():
        return []
    same = masks.resolve() == images.resolve()
    mask_files = {p.stem: p for p in masks.iterdir()
                  if p.is_file() and p.suffix.lower() in MASK_SUFFIXES and not p.name.startswith(".")}
    pairs = []
    for p in image_files(images):
        if same and looks_like_mask(p.stem):
            continue
        for suffix in MASK_STEM_SUFFIXES:
            m = mask_files.get(p.stem + suffix)
            if m is not None and m != p:
                pairs.append((p, m))
                break
    return pairs


def sidecar_pixel_sizes(images: str | Path) -> dict[str, float]:
    """Pixel sizes recorded by the Label page in ``labelset.json`` beside ``images/`` (its PNGs carry none).

    An unreadable file counts as absent; a recorded value that is not a usable pixel size (NaN, infinite,
    negative, text) is refused in one line naming the file and the image, never carried into a model.
    """
    import json

    from temzoo.errors import DataError, ReadError
    from temzoo.io.units import check_pixel_size
    from temzoo.io.untrusted import read_small, shown

    p = Path(images).parent / "labelset.json"
    try:
        items = json.loads(read_small(p, "labelset.json").decode("utf-8")).get("items", {}) if p.is_file() else {}
        items = {str(k): v for k, v in items.items() if isinstance(v, dict) and v.get("pixel_size_nm") is not None}
    except (OSError, ValueError, TypeError, AttributeError, RecursionError, ReadError):
        return {}
    out = {}
    for k, v in items.items():
        try:
            out[k] = check_pixel_size(v["pixel_size_nm"], f"pixel size of {k}")
        except DataError as err:
            raise DataError(f"{shown(p)}: {err}; fix or remove that entry") from None
    return out


@dataclass
class Pairing:
    """Images matched with their labels."""

    pairs: list[tuple[Path, Label]]
    kind: str  # e.g. "mask images (masks)", for descriptions
    class_names: list[str] = field(default_factory=lambda: ["background", "foreground"])
    label_files: list[Path] = field(default_factory=list)  # files read for all pairs at once (COCO json)
    warnings: list[str] = field(default_factory=list)


def _coco(files: list[Path], labels: Path, images: Path) -> Pairing:
    coco, class_names = read_coco(labels)
    by_name = {p.name: p for p in files}
    out = Pairing([(by_name[f], m) for f, m in coco.items() if f in by_name], f"COCO polygons ({labels.name})",
                  class_names, [labels])
    missing = sorted(set(coco) - set(by_name))
    if missing:
        out.warnings.append(f"{len(missing)} images listed in {labels.name} are not in {images} (e.g. {missing[0]})")
    return out


def _is_yolo(labels: Path) -> bool:
    entries = list(labels.iterdir())
    return any(p.suffix == ".txt" for p in entries) and not any(p.suffix.lower() in MASK_SUFFIXES for p in entries)


def _yolo(files: list[Path], labels: Path) -> Pairing:
    txt = {p.stem: p for p in labels.iterdir() if p.suffix == ".txt" and p.stem != "classes"}
    out = Pairing([(p, txt[p.stem]) for p in files if p.stem in txt], f"YOLO-seg labels ({labels.name})")
    names_file = labels / "classes.txt"
    if names_file.exists():
        text = read_text_file(names_file, "class names file")
        out.class_names = ["background"] + [ln.strip() for ln in text.splitlines() if ln.strip()]
    return out


def find_pairs(images: str | Path, labels: str | Path | None, require_all: bool = False) -> Pairing:
    """Pair the images of ``images`` with ``labels`` (masks folder, COCO json or YOLO-seg folder).

    No pair at all is a :class:`DataError`; images without a label are a warning, or an error naming them when
    ``require_all`` (evaluation: every image must be scored).
    """
    images = Path(images)
    files = image_files(images)
    if labels is None:
        raise DataError(f"no labels given: pass {LABEL_KINDS}")
    labels = Path(labels)
    if labels.is_file() and labels.suffix.lower() == ".json":
        out = _coco(files, labels, images)
    elif labels.is_dir() and _is_yolo(labels):
        out = _yolo(files, labels)
    elif labels.is_dir():
        out = Pairing(mask_pairs(images, labels), f"mask images ({labels.name})")
    else:
        raise DataError(f"labels {labels} not found: give {LABEL_KINDS}")
    if not out.pairs:
        raise DataError(f"no image/label pairs found: {len(files)} images in {images}, none with a label in {labels} "
                        "(masks are matched by file stem, e.g. images/a.png with masks/a.png)")
    paired = {p for p, _ in out.pairs}
    missing = [p.name for p in files if p not in paired and not looks_like_mask(p.stem)]
    if missing and require_all:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"no label in {labels} for: {shown}; masks are matched by file stem")
    if missing:
        out.warnings.append(f"{len(missing)} images in {images} have no label and are not used")
    return out


def read_label(label: Label, shape: tuple[int, int], image_name: str) -> np.ndarray:
    """The class-index mask of one pair, checked against its image's ``shape``."""
    if isinstance(label, np.ndarray):
        mask = label
    elif label.suffix == ".txt":
        mask = read_yolo_seg(label, shape)
    else:
        mask = read_mask(label)
    if mask.shape != tuple(shape):
        raise DataError(f"mask for {image_name} is {mask.shape[1]}x{mask.shape[0]} but the image is "
                        f"{shape[1]}x{shape[0]}; masks must have the image's size")
    return mask


def split_last(images: str | Path, masks: str | Path, n_test: int) -> tuple[list, list]:
    """(pool, test) mask pairs in :func:`natural_order`; the test set is the last ``n_test`` (recipes, benchmarks)."""
    pairs = sorted(mask_pairs(images, masks), key=lambda pm: natural_order(pm[0]))
    return pairs[:-n_test], pairs[-n_test:]
