"""Label masks: read PNG/TIFF/JPEG/DM masks, rasterise COCO polygons and YOLO-seg text, write PNG masks.

Every reader returns a ``uint8`` array of class indices (0 = background, 1.. = classes), the one representation
training and evaluation use. Binary masks stored as 0/255 become 0/1. Anything ambiguous (grey levels that are
neither binary nor small class indices, RGB masks with different channels, polygons outside the image) is a
:class:`~temzoo.errors.DataError` saying which file and what to do, never a silent guess.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from temzoo.errors import DataError, TemzooError
from temzoo.io.untrusted import shown
from temzoo.validate import _show  # the one way an offending value is quoted in an error line

MASK_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif", ".dm3", ".dm4")
# Class-index masks hold small integers; anything larger (but not 255 in a binary mask) is a grey-level image.
MAX_CLASSES = 64
_LOSSY = (".jpg", ".jpeg")
# Bounds checked on declared sizes before anything is allocated (a 16k x 16k mask is 256 MB as uint8).
MAX_MASK_PIXELS = 2**28
MAX_MASK_SIDE = 2**20
MAX_COCO_PIXELS = 2**31  # all masks of one COCO file together


def read_mask(path: str | Path) -> np.ndarray:
    """Read one mask file as ``uint8`` class indices ``(H, W)``.

    Accepted: binary 0/255 (or 0/1, or boolean), class-index images (0..63), RGB(A) images whose colour channels
    are equal, masks drawn in the alpha channel only (see :func:`mask_to_classes`), JPEG masks (lossy: thresholded
    at half range, binary only), float TIFFs holding whole numbers, and DigitalMicrograph images (through
    :func:`temzoo.io.read_micrograph`). A file whose pixel data stops short of what its header declares is refused,
    never padded. Images are decoded in a child process under the time and memory limits of
    :mod:`temzoo.io.untrusted` (a deflate TIFF can expand to gigabytes).
    """
    from temzoo.io.untrusted import run_limited

    path = Path(path)
    _require_file(path, "mask")
    suffix = path.suffix.lower()
    try:
        if suffix in (".dm3", ".dm4"):
            from temzoo.io import read_micrograph

            arr = np.asarray(read_micrograph(path).frame(0))
        else:
            arr = run_limited(_decode_mask, str(path), name=path.name, preload=["temzoo.io.masks"])[1][0]
    except TemzooError as err:
        raise DataError(str(err)) from None
    return mask_to_classes(arr, name=shown(path.name), lossy=suffix in _LOSSY)


def _decode_mask(path: str) -> tuple[dict, list[np.ndarray]]:
    """The child's side of :func:`read_mask`: the raw array of a TIFF or a Pillow-readable image, checked."""
    p = Path(path)
    try:
        arr = _read_tiff_mask(p) if p.suffix.lower() in (".tif", ".tiff") else _read_pil_mask(p)
    except TemzooError:
        raise
    except Exception as err:  # noqa: BLE001 - unreadable/corrupt file: one line naming it
        if isinstance(err, MemoryError):
            raise  # the parent words it (memory limit)
        raise DataError(f"cannot read mask {shown(p.name)}: {' '.join(str(err).split())[:160]}") from None
    return {}, [arr]


def _require_file(path: Path, what: str) -> None:
    """A regular file, or one DataError line (a FIFO would block ``open`` forever)."""
    from temzoo.io.untrusted import require_regular

    if not path.exists():
        raise DataError(f"{what} {shown(path)} does not exist; check the path")
    try:
        st = require_regular(path, what)
    except TemzooError as err:
        raise DataError(str(err)) from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{what} {shown(path)} is a folder, not a file")


def _read_tiff_mask(path: Path) -> np.ndarray:
    import tifffile

    from temzoo.io.untrusted import check_declared_tiff

    # tifffile logs damaged tags on stderr before raising; the user gets the one DataError line instead.
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        check_declared_tiff(path, lazy=False, budget=MAX_MASK_PIXELS * 8)
        with tifffile.TiffFile(path) as tif:
            if len(tif.series) != 1 or len(tif.series[0].pages) != 1:
                raise DataError(f"mask {shown(path.name)} holds {len(tif.pages)} images; a mask is one 2D image")
            page = tif.series[0].pages[0]
            arr = np.asarray(page.asarray())
    finally:
        log.setLevel(level)
    _check_decoded(arr, (int(page.imagelength), int(page.imagewidth)), path.name)
    return arr


def _read_pil_mask(path: Path) -> np.ndarray:
    """Decode with Pillow; truncated data is an error (never zero-padded), the size is checked before decoding."""
    from PIL import Image, ImageFile

    with Image.open(path) as im:
        w, h = im.size
        if w * h > MAX_MASK_PIXELS:
            raise DataError(f"mask {shown(path.name)} declares {w}x{h} pixels, more than temzoo reads as a mask "
                            f"({MAX_MASK_PIXELS} pixels); is it corrupt?")
        if getattr(im, "n_frames", 1) > 1:
            raise DataError(f"mask {shown(path.name)} holds {im.n_frames} frames; a mask is one 2D image")
        if im.format == "PNG":
            check_png_data(path)
        # A process-wide Pillow switch some libraries turn on: it would zero-pad a truncated file silently.
        before = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            im.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before
        arr = np.asarray(im)
    _check_decoded(arr, (h, w), path.name)
    return arr


def _check_decoded(arr: np.ndarray, hw: tuple[int, int], name: str) -> None:
    if arr.ndim < 2 or tuple(arr.shape[:2]) != hw:
        raise DataError(f"mask {shown(name)} decoded to shape {arr.shape}, not the {hw[1]}x{hw[0]} its header "
                        "declares; the file is corrupt")


# PNG colour type -> samples per pixel (greyscale, RGB, palette, grey+alpha, RGBA).
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def check_png_data(path: str | Path) -> None:
    """Refuse a PNG whose compressed pixel data inflates to more or fewer bytes than its header declares.

    Pillow zero-fills the missing rows of a PNG whose (complete, valid) zlib stream holds too few of them: a mask
    read that way silently loses labels. The inflated bytes are counted, never kept (memory stays ~1 MB).
    """
    import struct
    import zlib

    path = Path(path)
    data = path.read_bytes()
    chunks, pos = [], 8
    ihdr = None
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            ihdr = data[pos + 8:pos + 21]
        elif kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + n])
        elif kind == b"IEND":
            break
        pos += 12 + n
    if ihdr is None or len(ihdr) != 13:
        raise DataError(f"mask {shown(path.name)} is not a complete PNG (no image header)")
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    bits = depth * _PNG_SAMPLES.get(colour, 1)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    expected = 0
    for x0, y0, dx, dy in passes:
        pw, ph = -(-(w - x0) // dx) if w > x0 else 0, -(-(h - y0) // dy) if h > y0 else 0
        if pw and ph:
            expected += ph * (1 + -(-(pw * bits) // 8))
    got, inflater = 0, zlib.decompressobj()
    try:
        for chunk in chunks:
            while chunk and got <= expected:
                got += len(inflater.decompress(chunk, 2**20))
                chunk = inflater.unconsumed_tail
        got += len(inflater.flush()) if got <= expected else 0
    except zlib.error as err:
        raise DataError(f"mask {shown(path.name)} has corrupt PNG pixel data ({err})") from None
    if got != expected or not inflater.eof:
        held = f"more than {expected}" if got > expected else f"{got} of the {expected}"
        raise DataError(f"mask {shown(path.name)}: its PNG pixel data holds {held} bytes its {w}x{h} header declares "
                        "(truncated or corrupt); export the mask again")


def mask_to_classes(arr: np.ndarray, name: str = "mask", lossy: bool = False) -> np.ndarray:
    """Turn a raw mask array into ``uint8`` class indices, or raise :class:`DataError` saying why not."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] in (2, 3, 4):
        arr = _flatten_channels(arr, name, lossy)
    elif arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise DataError(f"mask {name} has shape {arr.shape}; expected a 2D image")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if lossy:
        # JPEG ringing makes exact values meaningless; only binary masks make sense in a lossy format.
        hi = float(arr.max())
        return (arr > (hi / 2 if hi > 1 else 0.5)).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(
                f"mask {name} holds non-integer values (a probability map?); threshold it to 0/1 or 0/255 first"
            )
    values = np.unique(arr)
    if values.min() < 0:
        raise DataError(f"mask {name} has negative values; expected 0/255 or class indices 0, 1, 2, ...")
    vals = set(values.astype(np.int64).tolist())
    if vals <= {0, 255}:
        return (arr == 255).astype(np.uint8)
    if max(vals) < MAX_CLASSES:
        return arr.astype(np.uint8)
    shown = ", ".join(str(v) for v in sorted(vals)[:6]) + (", ..." if len(vals) > 6 else "")
    raise DataError(
        f"mask {name} has values {shown}: expected binary 0/255 or class indices 0..{MAX_CLASSES - 1}; "
        "is this a micrograph rather than a mask?"
    )


def _flatten_channels(arr: np.ndarray, name: str, lossy: bool) -> np.ndarray:
    """``(H, W, C)`` -> ``(H, W)``: colour channels must agree; an alpha channel (LA, RGBA) follows the alpha rule.

    Alpha rule: an opaque (constant) alpha is ignored; when the colour is constant and alpha varies, the mask was
    drawn in the alpha channel and alpha is the mask; when both vary, the colour is the mask and every fully
    transparent pixel must be background there (else labels would hide under transparency: refused).
    """
    n = arr.shape[-1]
    colour = arr[..., : 3 if n >= 3 else 1]
    if not all(np.array_equal(colour[..., 0], colour[..., c]) for c in range(1, colour.shape[-1])):
        if lossy and np.abs(colour.astype(np.int16) - colour[..., :1].astype(np.int16)).max() <= 16:
            colour = colour[..., :1]
        else:
            raise DataError(
                f"mask {name} is a colour image with different channels; save it as a greyscale "
                "binary (0/255) or class-index (0, 1, 2, ...) image"
            )
    grey = colour[..., 0]
    if n not in (2, 4):
        return grey
    alpha = arr[..., -1]
    if alpha.min() == alpha.max():
        return grey
    if grey.min() == grey.max():
        return alpha
    hidden = int(np.count_nonzero(grey[alpha == 0]))
    if hidden:
        raise DataError(
            f"mask {name} has labels in both its colour and its transparency that disagree ({hidden} fully "
            "transparent pixels are not background); flatten it to a greyscale image"
        )
    return grey


def write_mask(path: str | Path, mask: np.ndarray) -> Path:
    """Save class indices as PNG: binary masks as 0/255 (viewable), multi-class as raw indices. Atomic."""
    import os
    import tempfile

    from PIL import Image

    path = Path(path)
    m = np.asarray(mask)
    if m.ndim != 2:
        raise DataError(f"a mask must be 2D, got shape {m.shape}")
    m = m.astype(np.uint8)
    out = m * 255 if m.max(initial=0) <= 1 else m
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(out, mode="L").save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ----------------------------------------------------------------------------------------------- polygons
def rasterize_polygons(
    polygons: Iterable[tuple[int, np.ndarray]], shape: tuple[int, int], name: str = "annotation"
) -> np.ndarray:
    """Fill ``(class_index, (N, 2) xy-vertices in pixels)`` polygons into a ``uint8`` mask of ``shape``.

    Later polygons paint over earlier ones. A polygon with fewer than 3 vertices, non-finite coordinates or vertices
    far outside the image (more than 1 % of its size, beyond rounding) raises :class:`DataError`.
    """
    from skimage.draw import polygon as fill_polygon
    from skimage.draw import polygon_perimeter

    h, w = shape
    mask = np.zeros((h, w), dtype=np.uint8)
    tol_x, tol_y = max(2.0, 0.01 * w), max(2.0, 0.01 * h)
    for k, (cls, xy) in enumerate(polygons):
        xy = np.asarray(xy, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) < 3:
            raise DataError(f"{name}: polygon {k} has {len(xy)} vertices; a polygon needs at least 3 (x, y) pairs")
        if not np.all(np.isfinite(xy)):
            raise DataError(f"{name}: polygon {k} has non-finite coordinates")
        if (xy[:, 0].min() < -tol_x or xy[:, 0].max() > w + tol_x or xy[:, 1].min() < -tol_y
                or xy[:, 1].max() > h + tol_y):
            raise DataError(
                f"{name}: polygon {k} lies outside the {w}x{h} image (x {xy[:, 0].min():.0f}..{xy[:, 0].max():.0f},"
                f" y {xy[:, 1].min():.0f}..{xy[:, 1].max():.0f}); are the coordinates for another image size?"
            )
        if not 0 < cls < 256:
            raise DataError(f"{name}: polygon {k} has class {cls}; classes must be 1..255")
        # Interior plus the outline, as cv2.fillPoly draws it: on the steel set's COCO file this reproduces its
        # shipped masks best (IoU 0.95 vs 0.89 for interior pixels only).
        # Repeated vertices add nothing, and a polygon collapsed to a point or a line makes skimage's clipper fail:
        # such a label is its outline only (still painted, never dropped).
        xy = xy[np.r_[True, np.any(np.diff(xy, axis=0) != 0, axis=1)]]
        corners = np.unique(np.round(xy).astype(np.int64), axis=0)
        if len(corners) < 3:
            _paint_segment(mask, corners[0], corners[-1], cls)
            continue
        rr, cc = fill_polygon(xy[:, 1], xy[:, 0], shape=(h, w))
        mask[rr, cc] = cls
        ri = np.round(xy).astype(np.int64)
        rr, cc = polygon_perimeter(ri[:, 1], ri[:, 0], shape=(h, w), clip=False)
        mask[rr, cc] = cls
    return mask


def _paint_segment(mask: np.ndarray, a: np.ndarray, b: np.ndarray, cls: int) -> None:
    """The pixels from vertex ``a`` to ``b`` (x, y), inside the mask: a polygon collapsed to a line or a point."""
    from skimage.draw import line

    rr, cc = line(int(a[1]), int(a[0]), int(b[1]), int(b[0]))
    keep = (rr >= 0) & (rr < mask.shape[0]) & (cc >= 0) & (cc < mask.shape[1])
    mask[rr[keep], cc[keep]] = cls


def read_coco(path: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Rasterise a COCO instances JSON: ``({file_name: mask}, class_names)``.

    Category ids map to class indices 1..K in increasing id order (0 = background); every image listed gets a mask,
    empty when it has no annotations. Polygons and uncompressed RLE are supported. Ids are JSON integers or strings,
    matched exactly (never coerced); an image listed twice (same file and size) gets the polygons of both entries.
    Anything else odd (wrong types, negative runs, sizes that disagree, declared sizes past :data:`MAX_MASK_PIXELS`)
    is one :class:`DataError` naming the file and the entry.
    """
    path = Path(path)
    name = shown(path.name)
    data = _load_json(path, "COCO file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
            data.get("annotations"), list):
        raise DataError(f"{name} is not a COCO instances file: it needs 'images' and 'annotations' lists")
    cat_index, class_names = _coco_categories(data, name)
    images, by_file = _coco_images(data["images"], name)
    default_cat = next(iter(cat_index))
    for k, ann in enumerate(data["annotations"]):
        _coco_annotation(ann, f"{name}: annotation {k}", images, cat_index, default_cat)
    masks: dict[str, np.ndarray] = {}
    for rec in by_file.values():
        m = rasterize_polygons(rec.polys, (rec.h, rec.w), name=f"{name} ({shown(rec.file)})")
        for cls, counts in rec.rles:
            fg = np.zeros(rec.h * rec.w, dtype=bool)
            runs = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
            fg[:len(runs)] = runs
            m[fg.reshape(rec.w, rec.h).T] = cls  # COCO RLE is column-major
        masks[rec.file] = m
    return masks, class_names


@dataclass
class _CocoImage:
    file: str
    h: int
    w: int
    polys: list[tuple[int, np.ndarray]] = field(default_factory=list)
    rles: list[tuple[int, np.ndarray]] = field(default_factory=list)


def _load_json(path: Path, what: str) -> Any:
    """Parse a label JSON: bounded size, UTF-8, no NaN/Infinity, nesting bombs refused; one DataError line."""
    raw = _read_small(path, what)
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise DataError(f"cannot read {what} {shown(path.name)}: it is nested too deeply (corrupt or crafted)") from None
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DataError(f"cannot read {what} {shown(path.name)}: {' '.join(str(err).split())[:160]}") from None


def _read_small(path: Path, what: str) -> bytes:
    """:func:`temzoo.io.untrusted.read_small` (regular file, bounded size) with its refusal as a DataError."""
    from temzoo.io.untrusted import read_small

    if not os.path.lexists(path):
        raise DataError(f"{what} {shown(path)} does not exist; check the path")
    try:
        return read_small(path, what)
    except TemzooError as err:
        raise DataError(str(err)) from None
    except OSError as err:
        raise DataError(f"cannot read {what} {shown(path.name)}: {err.strerror or err}") from None


def _refuse_constant(word: str) -> None:
    raise ValueError(f"it holds {word}, which is not a number a label can use")


def _ident(value: Any, what: str) -> int | str:
    """A COCO id: a JSON integer or string, used as it is (``1`` and ``"1"`` are different ids)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"{what} must be an integer or a string, got {_show(value)}")
    return value


def _json_int(value: Any, what: str, lo: int, hi: int | None = None) -> int:
    """A whole JSON number in ``[lo, hi]`` (strings and booleans refused: they are not numbers in JSON)."""
    from temzoo.validate import number

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{what} must be a whole number, got {_show(value)}")
    return int(number(value, what, lo, hi, integer=True))


def _coco_categories(data: dict, name: str) -> tuple[dict[int | str, int], list[str]]:
    """Category id -> class index 1..K (increasing id order) and the class names (index 0: background)."""
    raw = data.get("categories") or []
    if not isinstance(raw, list):
        raise DataError(f"{name}: 'categories' must be a list of {{'id', 'name'}} objects")
    names: dict[int | str, str] = {}
    for k, c in enumerate(raw):
        where = f"{name}: category {k}"
        if not isinstance(c, dict) or "id" not in c:
            raise DataError(f"{where} must be an object with an 'id'")
        cid = _ident(c["id"], f"{where}: id")
        label = c.get("name", f"class{cid}")
        if not isinstance(label, str):
            raise DataError(f"{where}: name must be a string, got {_show(label)}")
        if names.get(cid, label) != label:
            raise DataError(f"{where}: id {cid!r} is listed twice with different names ({names[cid]!r}, {label!r})")
        names[cid] = label
    if not names:  # no categories: the ids the annotations use
        for k, a in enumerate(data["annotations"]):
            if isinstance(a, dict) and "category_id" in a:
                cid = _ident(a["category_id"], f"{name}: annotation {k}: category_id")
                names[cid] = f"class{cid}"
        names = names or {1: "class1"}
    order = sorted(names, key=lambda c: (isinstance(c, str), c))
    if len(order) > 255:
        raise DataError(f"{name} has {len(order)} categories; a mask holds at most 255 classes")
    return {c: i + 1 for i, c in enumerate(order)}, ["background"] + [names[c] for c in order]


def _coco_images(entries: list, name: str) -> tuple[dict[int | str, _CocoImage], dict[str, _CocoImage]]:
    """Image id -> record, file -> record. One file listed twice with its size shares one record (merged)."""
    images: dict[int | str, _CocoImage] = {}
    by_file: dict[str, _CocoImage] = {}
    for k, im in enumerate(entries):
        where = f"{name}: image {k}"
        missing = [f for f in ("id", "file_name", "width", "height") if f not in im] if isinstance(im, dict) else []
        if not isinstance(im, dict) or missing:
            raise DataError(f"{where} lacks {', '.join(missing) or 'id, file_name, width and height'}")
        iid = _ident(im["id"], f"{where}: id")
        where = f"{where} (id {iid!r})"
        fname = im["file_name"]
        if not isinstance(fname, str) or not Path(fname).name:
            raise DataError(f"{where}: file_name must be a file name, got {_show(fname)}")
        file = Path(fname).name
        h = _json_int(im["height"], f"{where}: height", 1, MAX_MASK_SIDE)
        w = _json_int(im["width"], f"{where}: width", 1, MAX_MASK_SIDE)
        if h * w > MAX_MASK_PIXELS:
            raise DataError(f"{where}: {w}x{h} pixels is more than temzoo reads as a mask ({MAX_MASK_PIXELS} pixels)")
        rec = by_file.setdefault(file, _CocoImage(file, h, w))
        if (rec.h, rec.w) != (h, w):
            raise DataError(f"{where}: {shown(file)} is listed twice with different sizes ({rec.w}x{rec.h} and "
                            f"{w}x{h}); keep the right entry")
        if images.setdefault(iid, rec) is not rec:
            raise DataError(f"{where}: id {iid!r} is used by two images ({shown(images[iid].file)} and "
                            f"{shown(file)}); image ids must be unique")
    if sum(r.h * r.w for r in by_file.values()) > MAX_COCO_PIXELS:
        raise DataError(f"{name} declares more mask pixels than temzoo holds at once ({MAX_COCO_PIXELS}); split it")
    return images, by_file


def _coco_annotation(ann: Any, where: str, images: dict[int | str, _CocoImage], cat_index: dict[int | str, int],
                     default_cat: int | str) -> None:
    """Check one annotation and add its polygons / RLE to its image's record."""
    if not isinstance(ann, dict):
        raise DataError(f"{where} must be an object, got {_show(ann)}")
    if "id" in ann:
        where = f"{where} (id {_show(ann['id'])})"
    iid = _ident(ann.get("image_id"), f"{where}: image_id")
    img = images.get(iid)
    if img is None:
        raise DataError(f"{where} refers to unknown image_id {iid!r}")
    cid = _ident(ann["category_id"], f"{where}: category_id") if "category_id" in ann else default_cat
    if cid not in cat_index:
        raise DataError(f"{where} has unknown category_id {cid!r}")
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg:
        for j, poly in enumerate(seg):
            img.polys.append((cat_index[cid], _coco_polygon(poly, f"{where} polygon {j}")))
    elif isinstance(seg, dict):
        img.rles.append((cat_index[cid], _rle_counts(seg, where, img)))
    else:
        raise DataError(f"{where} has no segmentation polygon; give its polygon or RLE (or remove the annotation)")


def _coco_polygon(poly: Any, where: str) -> np.ndarray:
    if not isinstance(poly, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in poly):
        raise DataError(f"{where}: coordinates must be numbers in a flat [x1, y1, x2, y2, ...] list")
    if len(poly) % 2:
        raise DataError(f"{where} has an odd number of coordinates; COCO polygons are flat [x1, y1, x2, y2, ...] lists")
    try:
        return np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    except OverflowError:
        raise DataError(f"{where} has a coordinate too large for a number") from None


def _rle_counts(seg: dict, where: str, img: _CocoImage) -> np.ndarray:
    """Validated uncompressed-RLE run lengths (decoded later, one at a time, into the image's mask)."""
    counts, size = seg.get("counts"), seg.get("size")
    if isinstance(counts, str):
        raise DataError(f"{where} uses compressed RLE; export polygons or uncompressed RLE instead")
    if not isinstance(counts, list) or not isinstance(size, list) or len(size) != 2:
        raise DataError(f"{where}: an RLE needs 'counts' (a list of run lengths) and 'size' [height, width]")
    h, w = (_json_int(v, f"{where}: RLE size", 1, MAX_MASK_SIDE) for v in size)
    if (h, w) != (img.h, img.w):
        raise DataError(f"{where}: RLE size {h}x{w} (height x width) differs from image {shown(img.file)} "
                        f"{img.h}x{img.w}")
    if any(isinstance(c, bool) or not isinstance(c, int) for c in counts):
        raise DataError(f"{where}: RLE counts must be whole numbers")
    if counts and min(counts) < 0:
        raise DataError(f"{where} has a negative RLE run ({min(counts)}); the RLE is corrupt")
    if sum(counts) > h * w:
        raise DataError(f"{where} has an RLE longer than its {h}x{w} image")
    return np.asarray(counts, dtype=np.int64)


def read_text_file(path: str | Path, what: str) -> str:
    """A label text file (YOLO labels, class names) as UTF-8 text; bounded size; one DataError line otherwise."""
    path = Path(path)
    try:
        return _read_small(path, what).decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{what} {shown(path.name)} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None


def read_yolo_seg(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise one YOLO-seg label file (``class x1 y1 x2 y2 ...``, coordinates normalised to 0..1).

    YOLO class ``c`` (0..254) becomes mask class ``c + 1`` (0 stays background). An empty file is an image with no
    objects. A bad line is one :class:`DataError` naming the file and the line.
    """
    path = Path(path)
    h, w = shape
    polys = []
    for n, line in enumerate(read_text_file(path, "YOLO label file").splitlines(), 1):
        parts = line.split()
        if parts:
            polys.append(_yolo_polygon(parts, f"{shown(path.name)} line {n}", (h, w)))
    return rasterize_polygons(polys, (h, w), name=shown(path.name))


def _yolo_polygon(parts: list[str], where: str, shape: tuple[int, int]) -> tuple[int, np.ndarray]:
    try:
        cls = int(parts[0])
        coords = np.asarray([float(v) for v in parts[1:]], dtype=np.float64)
    except (ValueError, OverflowError):
        raise DataError(f"{where}: expected 'class x1 y1 x2 y2 ...' numbers") from None
    if not 0 <= cls < 255:
        raise DataError(f"{where}: class {cls} is outside 0..254")
    if len(coords) % 2 or len(coords) < 6:
        raise DataError(
            f"{where}: a YOLO-seg polygon needs an even number (>= 6) of coordinates after the class; "
            "is this a detection (box) label rather than segmentation?"
        )
    if not np.all(np.isfinite(coords)):
        raise DataError(f"{where}: coordinates must be finite numbers")
    xy = coords.reshape(-1, 2)
    if xy.min() < -0.01 or xy.max() > 1.01:
        raise DataError(f"{where}: YOLO coordinates must be normalised to 0..1")
    return cls + 1, xy * np.array([shape[1], shape[0]])
