"""Label masks: read PNG/TIFF/JPEG/DM masks, rasterise COCO polygons and YOLO-seg text, write PNG masks.

Every reader returns a ``uint8`` array of class indices (0 = background, 1.. = classes), the one representation
training and evaluation use. Binary masks stored as 0/255 become 0/1. Anything ambiguous (grey levels that are
neither binary nor small class indices, RGB masks with different channels, polygons outside the image) is a
:class:`~temzoo.errors.DataError` saying which file and what to do, never a silent guess.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from temzoo.errors import DataError

MASK_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif", ".dm3", ".dm4")
# Class-index masks hold small integers; anything larger (but not 255 in a binary mask) is a grey-level image.
MAX_CLASSES = 64
_LOSSY = (".jpg", ".jpeg")


def read_mask(path: str | Path) -> np.ndarray:
    """Read one mask file as ``uint8`` class indices ``(H, W)``.

    Accepted: binary 0/255 (or 0/1, or boolean), class-index images (0..63), RGB(A) images whose colour channels
    are equal, JPEG masks (lossy: thresholded at half range, binary only), float TIFFs holding whole numbers, and
    DigitalMicrograph images (through :func:`temzoo.io.read_micrograph`).
    """
    from temzoo.errors import ReadError
    from temzoo.io.untrusted import require_regular, run_limited, shown

    path = Path(path)
    try:
        if not os.path.lexists(path):
            raise DataError(f"mask {shown(path)} does not exist; check the masks folder")
        if stat.S_ISDIR(require_regular(path, "mask").st_mode):
            raise DataError(f"mask {shown(path)} is a folder, not a mask file")
        suffix = path.suffix.lower()
        if suffix in (".dm3", ".dm4"):
            from temzoo.io import read_micrograph

            arr = np.asarray(read_micrograph(path).frame(0))
        else:  # decoded in a child under the time and memory limits (a deflate TIFF can expand to GBs)
            arr = run_limited(_decode_mask, str(path), name=path.name)[1][0]
    except ReadError as err:
        raise DataError(f"cannot read mask {shown(path.name)}: {err}") from None
    return mask_to_classes(arr, name=path.name, lossy=suffix in _LOSSY)


def _decode_mask(path: str) -> tuple[dict, list[np.ndarray]]:
    """The child's side of :func:`read_mask`: the raw array of a TIFF or a PIL-readable image."""
    p = Path(path)
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            from temzoo.io.untrusted import check_declared_tiff

            check_declared_tiff(p, lazy=False)
            arr = np.asarray(tifffile.imread(p))
        else:
            from PIL import Image

            # Palette ("P") PNGs give their indices, which are the class indices (the palette only colours them).
            with Image.open(p) as im:
                arr = np.asarray(im)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - unreadable/corrupt file: one line naming it
        if isinstance(err, MemoryError):
            raise
        from temzoo.errors import TemzooError

        if isinstance(err, TemzooError):
            raise DataError(str(err)) from None
        raise DataError(f"cannot read mask {p.name}: {' '.join(str(err).split())[:160]}") from None
    return {}, [arr]


def mask_to_classes(arr: np.ndarray, name: str = "mask", lossy: bool = False) -> np.ndarray:
    """Turn a raw mask array into ``uint8`` class indices, or raise :class:`DataError` saying why not."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] in (2, 3, 4):
        # Greyscale saved as RGB (common for masks exported by drawing tools): channels must agree.
        colour = arr[..., : 3 if arr.shape[-1] >= 3 else 1]
        if not all(np.array_equal(colour[..., 0], colour[..., c]) for c in range(1, colour.shape[-1])):
            if lossy and np.abs(colour.astype(np.int16) - colour[..., :1].astype(np.int16)).max() <= 16:
                colour = colour[..., :1]
            else:
                raise DataError(
                    f"mask {name} is a colour image with different channels; save it as a greyscale "
                    "binary (0/255) or class-index (0, 1, 2, ...) image"
                )
        arr = colour[..., 0]
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
        rr, cc = fill_polygon(xy[:, 1], xy[:, 0], shape=(h, w))
        mask[rr, cc] = cls
        ri = np.round(xy).astype(np.int64)
        rr, cc = polygon_perimeter(ri[:, 1], ri[:, 0], shape=(h, w), clip=False)
        mask[rr, cc] = cls
    return mask


def read_coco(path: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Rasterise a COCO instances JSON: ``({file_name: mask}, class_names)``.

    Category ids map to class indices 1..K in increasing id order (0 = background); every image listed gets a mask,
    empty when it has no annotations. Polygons and uncompressed RLE are supported.
    """
    from temzoo.errors import ReadError
    from temzoo.io.untrusted import read_small

    path = Path(path)
    try:
        data = json.loads(read_small(path, "COCO file").decode("utf-8"))
    except ReadError as err:
        raise DataError(str(err)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read COCO file {path.name}: {' '.join(str(err).split())[:160]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
            data.get("annotations"), list):
        raise DataError(f"{path.name} is not a COCO instances file: it needs 'images' and 'annotations' lists")
    cats = sorted(int(c["id"]) for c in data.get("categories", []) if "id" in c)
    if not cats:
        cats = sorted({int(a.get("category_id", 1)) for a in data["annotations"]}) or [1]
    cat_index = {cid: i + 1 for i, cid in enumerate(cats)}
    names_by_id = {int(c["id"]): str(c.get("name", c["id"])) for c in data.get("categories", []) if "id" in c}
    class_names = ["background"] + [names_by_id.get(c, f"class{c}") for c in cats]

    images: dict[int, dict] = {}
    for im in data["images"]:
        try:
            images[int(im["id"])] = {"file": Path(str(im["file_name"])).name, "h": int(im["height"]),
                                     "w": int(im["width"]), "polys": []}
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path.name}: an image entry lacks id, file_name, width or height") from None
    masks: dict[str, np.ndarray] = {}
    rle_masks: dict[int, list[tuple[int, np.ndarray]]] = {}
    for a in data["annotations"]:
        img = images.get(int(a.get("image_id", -1)))
        if img is None:
            raise DataError(f"{path.name}: annotation {a.get('id')} refers to unknown image_id {a.get('image_id')}")
        cid = int(a.get("category_id", cats[0]))
        if cid not in cat_index:
            raise DataError(f"{path.name}: annotation {a.get('id')} has unknown category_id {cid}")
        seg = a.get("segmentation")
        if isinstance(seg, list):
            for poly in seg:
                if not isinstance(poly, list) or len(poly) % 2:
                    raise DataError(
                        f"{path.name}: annotation {a.get('id')} has a polygon with an odd number of coordinates; "
                        "COCO polygons are flat [x1, y1, x2, y2, ...] lists"
                    )
                img["polys"].append((cat_index[cid], np.asarray(poly, dtype=np.float64).reshape(-1, 2)))
        elif isinstance(seg, dict):
            rle_masks.setdefault(int(a["image_id"]), []).append((cat_index[cid], _decode_rle(seg, path.name, a)))
        else:
            raise DataError(f"{path.name}: annotation {a.get('id')} has no segmentation polygon")
    for iid, img in images.items():
        m = rasterize_polygons(img["polys"], (img["h"], img["w"]), name=f"{path.name} ({img['file']})")
        for cls, rle in rle_masks.get(iid, []):
            if rle.shape != m.shape:
                raise DataError(f"{path.name}: RLE size {rle.shape} differs from image {img['file']} {m.shape}")
            m[rle] = cls
        masks[img["file"]] = m
    return masks, class_names


def _decode_rle(seg: dict, name: str, ann: dict) -> np.ndarray:
    counts, size = seg.get("counts"), seg.get("size")
    if not isinstance(counts, list) or not isinstance(size, list) or len(size) != 2:
        raise DataError(
            f"{name}: annotation {ann.get('id')} uses compressed RLE; export polygons or uncompressed RLE instead"
        )
    h, w = int(size[0]), int(size[1])
    flat = np.zeros(h * w, dtype=bool)
    pos, val = 0, False
    for c in counts:
        if pos + int(c) > h * w:
            raise DataError(f"{name}: annotation {ann.get('id')} has an RLE longer than its {h}x{w} image")
        flat[pos:pos + int(c)] = val
        pos += int(c)
        val = not val
    return flat.reshape(w, h).T  # COCO RLE is column-major


def read_yolo_seg(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise one YOLO-seg label file (``class x1 y1 x2 y2 ...``, coordinates normalised to 0..1).

    YOLO class ``c`` becomes mask class ``c + 1`` (0 stays background). An empty file is an image with no objects.
    """
    from temzoo.errors import ReadError
    from temzoo.io.untrusted import read_small

    path = Path(path)
    h, w = shape
    polys = []
    try:
        lines = read_small(path, "YOLO label file").decode("utf-8").splitlines()
    except ReadError as err:
        raise DataError(str(err)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read YOLO label file {path.name}: {err}") from None
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls = int(parts[0])
            coords = np.asarray([float(v) for v in parts[1:]], dtype=np.float64)
        except ValueError:
            raise DataError(f"{path.name} line {n}: expected 'class x1 y1 x2 y2 ...' numbers") from None
        if len(coords) % 2 or len(coords) < 6:
            raise DataError(
                f"{path.name} line {n}: a YOLO-seg polygon needs an even number (>= 6) of coordinates after the class; "
                "is this a detection (box) label rather than segmentation?"
            )
        xy = coords.reshape(-1, 2)
        if xy.min() < -0.01 or xy.max() > 1.01:
            raise DataError(f"{path.name} line {n}: YOLO coordinates must be normalised to 0..1")
        polys.append((cls + 1, xy * np.array([w, h])))
    return rasterize_polygons(polys, (h, w), name=path.name)
