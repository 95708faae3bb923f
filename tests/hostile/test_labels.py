"""Hostile labels (issue #12, class 7): mutated mask images, COCO and YOLO files, each read exactly or refused.

Every case is generated from a seed inside the batch worker (nothing is written at collection time): a real mask
file (PNG in 7 layouts, TIFF raw/deflate, BMP, GIF), a COCO instances file and a YOLO-seg file, then mutated (bits
flipped anywhere, truncated, length fields enlarged, JSON fields type-swapped or deleted, nesting bombs, huge RLE,
NaN/Infinity, non-UTF-8 bytes). The contract, beyond the harness's (no traceback, no hang, bounded memory, one
line): a PNG mask that is accepted equals the unmutated mask (zlib's checksum and the chunk CRCs make any other
outcome a silent alteration); every accepted mask is a 2D ``uint8`` array of the size its file declares.

Share of the harness budget: about 30 s (~750 cases in batches of 250; 28 s measured at load average 19).
"""

from __future__ import annotations

import io
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.hostile._run import Case, batches, check_batch

H, W = 40, 52
PNG_LAYOUTS = ("binary", "classes", "palette", "alpha", "la", "u16", "interlaced")
OTHER_LAYOUTS = ("tiff", "tiff-deflate", "bmp", "gif")
ODD_VALUES = [None, "1", 1.5, -1, 0, True, [], {}, 1e308, 10**30, "x" * 5, [[[1]]]]


# ------------------------------------------------------------------------------------------------ base files


def truth() -> np.ndarray:
    """The class-index mask every base file encodes (3 classes, so class-index layouts hold more than 0/1)."""
    m = np.zeros((H, W), np.uint8)
    m[5:20, 6:30] = 1
    m[25:35, 30:48] = 2
    m[8:12, 40:50] = 3
    return m


def mask_bytes(layout: str) -> tuple[bytes, str, np.ndarray]:
    """(file bytes, suffix, the class mask read_mask must return for them)."""
    import tifffile
    from PIL import Image

    t = truth()
    binary = (t > 0).astype(np.uint8)
    buf = io.BytesIO()
    if layout == "binary":
        Image.fromarray(binary * 255).save(buf, format="PNG")
        return buf.getvalue(), ".png", binary
    if layout in ("classes", "palette"):
        im = Image.fromarray(t)
        if layout == "palette":
            im = im.convert("P")
        im.save(buf, format="PNG")
        return buf.getvalue(), ".png", t
    if layout in ("alpha", "la"):
        a = binary * 255
        arr = (np.stack([np.full_like(a, 255)] * 3 + [a], -1) if layout == "alpha"
               else np.stack([np.zeros_like(a), a], -1))
        Image.fromarray(arr, mode="RGBA" if layout == "alpha" else "LA").save(buf, format="PNG")
        return buf.getvalue(), ".png", binary
    if layout == "u16":
        Image.fromarray(t.astype(np.uint16)).save(buf, format="PNG")
        return buf.getvalue(), ".png", t
    if layout == "interlaced":
        Image.fromarray(binary * 255).save(buf, format="PNG", interlace=1)
        return buf.getvalue(), ".png", binary
    if layout.startswith("tiff"):
        tifffile.imwrite(buf, t, compression="zlib" if layout == "tiff-deflate" else None)
        return buf.getvalue(), ".tif", t
    Image.fromarray(binary * 255).save(buf, format=layout.upper())
    return buf.getvalue(), f".{layout}", binary


def coco_doc() -> dict[str, Any]:
    """A small COCO file: two images, polygons in two categories, one uncompressed RLE."""
    rle = np.zeros((H, W), bool)
    rle[30:36, 2:9] = True
    flat = rle.T.ravel()
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    counts = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return {
        "info": {"description": "hostile"},
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H},
                   {"id": 2, "file_name": "b.png", "width": W, "height": H}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[5, 5, 25, 5, 25, 18, 5, 18]]},
            {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [[30, 25, 45, 25, 45, 33]]},
            {"id": 3, "image_id": 2, "category_id": 1, "segmentation": {"counts": counts, "size": [H, W]}},
        ],
        "categories": [{"id": 1, "name": "loop"}, {"id": 2, "name": "void"}],
    }


YOLO_TEXT = "0 0.1 0.1 0.5 0.1 0.5 0.5\n1 0.6 0.6 0.9 0.6 0.9 0.9 0.6 0.9\n"


# ------------------------------------------------------------------------------------------------ mutations


def mutate(data: bytes, op: str, seed: int) -> bytes:
    """Byte-level damage: a flipped bit, a truncation, an enlarged 4-byte field, junk, a zeroed run."""
    rng = random.Random(seed)
    b = bytearray(data)
    if op == "flip":
        pos = rng.randrange(len(b))
        b[pos] ^= 1 << rng.randrange(8)
    elif op == "truncate":
        del b[rng.randrange(len(b)):]
    elif op == "enlarge":  # a length/size/offset field: most headers keep them in the first bytes, 4-byte aligned
        pos = rng.randrange(0, min(len(b) - 4, 160) // 4) * 4
        b[pos:pos + 4] = rng.choice([b"\xff\xff\xff\xf0", b"\x7f\xff\xff\xff", b"\x00\x01\x00\x00"])
    elif op == "zero":
        pos, n = rng.randrange(len(b)), rng.randrange(1, 64)
        b[pos:pos + n] = bytes(len(b[pos:pos + n]))
    elif op == "junk":
        b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    return bytes(b)


def json_paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document (containers and leaves)."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += json_paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:4]):  # long lists (RLE counts): their first entries stand for the rest
            out += json_paths(v, prefix + (i,))
    return out


def set_path(doc: Any, path: tuple, value: Any, delete: bool = False) -> Any:
    doc = json.loads(json.dumps(doc))
    node = doc
    for k in path[:-1]:
        node = node[k]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


# ------------------------------------------------------------------------------------------------ the batch function


def label_case(item: dict[str, Any]) -> None:
    """Batch function: build the item's file in a temporary folder, read it the way training and the Label page do."""
    from temzoo.io.masks import read_coco, read_mask, read_yolo_seg

    with tempfile.TemporaryDirectory(prefix="hostile-label-") as tmp:
        if item["kind"] == "mask":
            data, suffix, want = mask_bytes(item["layout"])
            p = Path(tmp) / f"m{suffix}"
            p.write_bytes(mutate(data, item["op"], item["seed"]) if item["op"] != "none" else data)
            got = read_mask(p)
            _check_mask(got, want.shape if item["op"] == "none" else None)
            if suffix == ".png" and not np.array_equal(got, want):  # PNG data is checksummed: accepted = exact
                raise AssertionError(f"PNG mask silently altered: {int((got != want).sum())} pixels differ")
        elif item["kind"] == "coco":
            p = Path(tmp) / "coco.json"
            p.write_bytes(coco_file_bytes(item))
            masks, names = read_coco(p)
            for m in masks.values():
                _check_mask(m, None)
            if not all(isinstance(n, str) for n in names):
                raise AssertionError(f"class names {names}")
        else:
            p = Path(tmp) / "a.txt"
            p.write_bytes(yolo_file_bytes(item))
            _check_mask(read_yolo_seg(p, (H, W)), (H, W))


def _check_mask(m: Any, shape: tuple[int, int] | None) -> None:
    if not isinstance(m, np.ndarray) or m.dtype != np.uint8 or m.ndim != 2:
        raise AssertionError(f"a mask must be 2D uint8, got {type(m).__name__} {getattr(m, 'dtype', '')}")
    if shape is not None and m.shape != shape:
        raise AssertionError(f"mask shape {m.shape}, expected {shape}")


def coco_file_bytes(item: dict[str, Any]) -> bytes:
    doc = coco_doc()
    op = item["op"]
    if op == "swap":
        doc = set_path(doc, tuple(item["path"]), item["value"])
    elif op == "delete":
        doc = set_path(doc, tuple(item["path"]), None, delete=True)
    elif op == "text":
        return item["text"].encode("utf-8")
    text = json.dumps(doc).encode("utf-8")
    if op in ("flip", "truncate", "zero", "junk"):
        return mutate(text, op, item["seed"])
    if op == "latin1":
        return json.dumps(set_path(doc, ("categories", 0, "name"), "d\u00e9faut"), ensure_ascii=False).encode("latin-1")
    return text


def yolo_file_bytes(item: dict[str, Any]) -> bytes:
    op = item["op"]
    text = YOLO_TEXT.encode()
    if op == "token":
        tokens = YOLO_TEXT.split(" ")
        tokens[item["index"]] = item["value"] + ("\n" if tokens[item["index"]].endswith("\n") else "")
        return " ".join(tokens).encode("utf-8")
    if op == "bytes":
        return bytes.fromhex(item["hex"])
    return mutate(text, op, item["seed"])


# ------------------------------------------------------------------------------------------------ the cases


def mask_cases() -> list[Case]:
    cases = []
    for layout in PNG_LAYOUTS + OTHER_LAYOUTS:
        png = layout in PNG_LAYOUTS
        plan = [("none", 1), ("flip", 14 if png else 8), ("truncate", 6 if png else 4), ("enlarge", 4 if png else 3),
                ("zero", 3), ("junk", 1)]
        for op, n in plan:
            for s in range(n):
                cases.append(Case(f"mask-{layout}-{op}-{s}", {"kind": "mask", "layout": layout, "op": op, "seed": s},
                                  7, expect="ok" if op == "none" else "any"))
    return cases


def coco_cases() -> list[Case]:
    doc = coco_doc()
    rng = random.Random(12)
    cases = [Case("coco-clean", {"kind": "coco", "op": "none"}, 7, expect="ok")]
    paths = json_paths(doc)
    for path in paths:
        for value in rng.sample(ODD_VALUES, 4):
            cases.append(Case(f"coco-swap-{'.'.join(map(str, path))}={value!r}"[:120],
                              {"kind": "coco", "op": "swap", "path": list(path), "value": value}, 7))
        cases.append(Case(f"coco-del-{'.'.join(map(str, path))}", {"kind": "coco", "op": "delete", "path": list(path)},
                          7))
    for op, n in (("flip", 30), ("truncate", 12), ("zero", 6), ("junk", 4)):
        cases += [Case(f"coco-{op}-{s}", {"kind": "coco", "op": op, "seed": s}, 7) for s in range(n)]
    cases.append(Case("coco-latin1", {"kind": "coco", "op": "latin1"}, 7, expect="error", match="coco.json"))
    texts = {
        "bomb-list": "[" * 200_000 + "]" * 200_000,
        "bomb-dict": '{"a":' * 100_000 + "1" + "}" * 100_000,
        "bomb-in-images": '{"annotations": [], "images": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "nan": json.dumps(doc).replace('"width": 52', '"width": NaN', 1),
        "inf": json.dumps(doc).replace('"height": 40', '"height": Infinity', 1),
        "neg-inf": json.dumps(doc).replace("[5, 5, 25", "[-Infinity, 5, 25", 1),
        "huge-int": json.dumps(doc).replace('"id": 1,', '"id": ' + "9" * 5000 + ",", 1),
        "empty": "", "null": "null", "list": "[]", "string": '"coco"',
    }
    cases += [Case(f"coco-text-{k}", {"kind": "coco", "op": "text", "text": v}, 7, expect="error",
                   match="coco.json") for k, v in texts.items()]
    cases += _coco_edge_cases()
    return cases


def _coco_edge_cases() -> list[Case]:
    """Named edge cases with a known answer: duplicates merged or refused, RLE and sizes bounded before allocation."""
    doc = coco_doc()
    img1 = doc["images"][0]
    edits = {
        "dup-image-merge": ({"images": doc["images"] + [dict(img1)]}, "ok", None),
        "dup-file-other-id": ({"images": doc["images"] + [dict(img1, id=9)]}, "ok", None),
        "dup-file-other-size": ({"images": doc["images"] + [dict(img1, id=9, width=W + 1)]}, "error",
                                "listed twice with different sizes"),
        "dup-id-other-file": ({"images": doc["images"] + [dict(img1, file_name="z.png")]}, "error",
                              "used by two images"),
        "rle-negative": ({"annotations": [dict(doc["annotations"][2], segmentation={"counts": [5, -3, 10],
                                                                                    "size": [H, W]})]},
                         "error", "negative RLE run"),
        "rle-huge-count": ({"annotations": [dict(doc["annotations"][2], segmentation={"counts": [10**15],
                                                                                      "size": [H, W]})]},
                           "error", "longer than"),
        "rle-huge-size": ({"annotations": [dict(doc["annotations"][2], segmentation={"counts": [1],
                                                                                     "size": [2**40, 2**40]})]},
                          "error", "RLE size"),
        "rle-compressed": ({"annotations": [dict(doc["annotations"][2], segmentation={"counts": "PPYo0",
                                                                                      "size": [H, W]})]},
                           "error", "compressed RLE"),
        "image-huge": ({"images": [dict(img1, width=2**19, height=2**19)]}, "error", "more than temzoo reads"),
        "images-many-large": ({"images": [dict(img1, id=i, file_name=f"{i}.png", width=16384, height=16384)
                                          for i in range(9)], "annotations": []}, "error", "more mask pixels"),
        "string-coords": ({"annotations": [dict(doc["annotations"][0],
                                                segmentation=[["5", "5", "25", "5", "25", "18"]])]},
                          "error", "coordinates must be numbers"),
        "string-ids-consistent": ({"images": [dict(img1, id="a")], "annotations": [
            dict(doc["annotations"][0], image_id="a")]}, "ok", None),
        "int-vs-string-id": ({"images": [dict(img1, id="1")], "annotations": [doc["annotations"][0]]}, "error",
                             "unknown image_id 1"),
        "no-categories": ({"categories": []}, "ok", None),
        "categories-not-list": ({"categories": {"id": 1}}, "error", "categories"),
    }
    out = []
    for name, (edit, expect, match) in edits.items():
        text = json.dumps({**doc, **edit})
        out.append(Case(f"coco-edge-{name}", {"kind": "coco", "op": "text", "text": text}, 7, expect=expect,
                        match=match))
    return out


def yolo_cases() -> list[Case]:
    cases = [Case("yolo-clean", {"kind": "yolo", "op": "none", "seed": 0}, 7, expect="ok")]
    for op, n in (("flip", 30), ("truncate", 10), ("zero", 4), ("junk", 6)):
        cases += [Case(f"yolo-{op}-{s}", {"kind": "yolo", "op": op, "seed": s}, 7) for s in range(n)]
    values = ["nan", "inf", "-inf", "-1", "1e999", "1" * 400, "x", "0x10", "1,5", "255", "\u0663", "1e-400", ""]
    n_tokens = len(YOLO_TEXT.split(" "))
    for i in range(n_tokens):
        for v in values[i % 3::3]:
            cases.append(Case(f"yolo-token-{i}={v!r}"[:80], {"kind": "yolo", "op": "token", "index": i, "value": v}, 7))
    raw = {"latin1": "0 0.1 0.1 0.5 0.1 0.5 0.5 # d\u00e9j\u00e0".encode("latin-1").hex(),
           "utf16": YOLO_TEXT.encode("utf-16").hex(), "nul": (b"\x00" * 64).hex(),
           "long-line": ("0 " + " ".join(["0.5"] * 200_000) + "\n").encode().hex()}
    cases += [Case(f"yolo-bytes-{k}", {"kind": "yolo", "op": "bytes", "hex": v}, 7,
                   expect="any" if k == "long-line" else "error") for k, v in raw.items()]
    return cases


def all_cases() -> list[Case]:
    return mask_cases() + coco_cases() + yolo_cases()


CASES = all_cases()
if Path(sys.argv[0]).name == "_run.py":
    # In the batch worker: the readers' imports happen here, before the first case's time limit starts.
    import skimage.draw  # noqa: F401
    import tifffile  # noqa: F401

    import temzoo.io.masks  # noqa: F401


def test_enough_cases():
    assert len(CASES) >= 500, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("group", batches(CASES, size=250, prefix="labels-"))
def test_hostile_labels(group):
    check_batch("tests.hostile.test_labels:label_case", group, "class 7: labels (masks, COCO, YOLO)")
