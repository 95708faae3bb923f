"""Issue #12, class 7: every label reads exactly or is refused in one line naming the file and the entry.

Each test here fails on the main of 2026-12-04 (checked with ``PYTHONPATH=/work/main``): the alpha-only mask read
as empty, the half-length PNG zero-padded, the duplicate COCO image's polygons overwritten, the negative RLE run
accepted, and the odd COCO/YOLO content escaping as ValueError/TypeError/RecursionError/UnicodeDecodeError.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from temzoo.errors import DataError
from temzoo.io.masks import read_coco, read_mask, read_yolo_seg
from temzoo.labelled import find_pairs


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def short_png(h: int = 64, w: int = 64, rows: int = 32) -> bytes:
    """A valid PNG (good CRCs, complete zlib stream) whose pixel data holds only ``rows`` of its ``h`` rows."""
    raw = b"".join(b"\x00" + bytes([255] * w) for _ in range(rows))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b""))


def test_alpha_only_mask_is_read_not_empty(tmp_path):
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., :3] = 255  # constant colour: the label is in the alpha channel only
    rgba[5:15, 10:30, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    m = read_mask(tmp_path / "a.png")
    assert m.sum() == 200 and m[5:15, 10:30].all()
    la = np.stack([np.zeros((40, 50), np.uint8), rgba[..., 3]], -1)  # grey + alpha
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    assert (read_mask(tmp_path / "la.png") == m).all()


def test_colour_and_alpha_rule(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[2:8, 2:8] = (255, 255, 255, 255)  # white drawn on a transparent black background: colour == alpha
    Image.fromarray(rgba).save(tmp_path / "agree.png")
    assert read_mask(tmp_path / "agree.png").sum() == 36
    rgba[12:16, 12:16, :3] = 255  # a label under full transparency: hidden, refused
    Image.fromarray(rgba).save(tmp_path / "hidden.png")
    with pytest.raises(DataError, match="hidden.png.*transparen"):
        read_mask(tmp_path / "hidden.png")
    rgba[..., 3] = 255  # opaque: the colour is the mask
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    assert read_mask(tmp_path / "opaque.png").sum() == 52


def test_png_with_short_pixel_data_is_refused_not_padded(tmp_path):
    (tmp_path / "half.png").write_bytes(short_png())
    with pytest.raises(DataError, match=r"half.png.*2080 of the 4160 bytes"):
        read_mask(tmp_path / "half.png")
    (tmp_path / "full.png").write_bytes(short_png(rows=64))
    assert read_mask(tmp_path / "full.png").all()
    for interlace in (0, 1):  # Pillow's own files, both layouts, pass the check
        a = (np.arange(37 * 23).reshape(37, 23) % 3 == 0).astype(np.uint8) * 255
        Image.fromarray(a).save(tmp_path / f"i{interlace}.png", interlace=interlace)
        assert (read_mask(tmp_path / f"i{interlace}.png") == (a > 0)).all()


def _coco(tmp_path, images, annotations, categories=None, name="coco.json"):
    p = tmp_path / name
    p.write_text(json.dumps({"images": images, "annotations": annotations,
                             "categories": categories if categories is not None else [{"id": 1, "name": "x"}]}))
    return p


SQUARE = [[2, 2, 12, 2, 12, 12, 2, 12]]


def test_coco_image_listed_twice_keeps_both_entries_polygons(tmp_path):
    im = {"id": 1, "file_name": "a.png", "width": 40, "height": 30}
    p = _coco(tmp_path, [im, dict(im, id=2), dict(im)],
              [{"id": 1, "image_id": 1, "segmentation": SQUARE},
               {"id": 2, "image_id": 2, "segmentation": [[20, 20, 30, 20, 30, 28]]}])
    m = read_coco(p)[0]["a.png"]
    assert m[5, 5] == 1 and m[21, 28] == 1  # both entries' polygons, none overwritten by the other
    p = _coco(tmp_path, [im, dict(im, id=2, width=41)], [])
    with pytest.raises(DataError, match="image 1 .*a.png is listed twice with different sizes"):
        read_coco(p)
    p = _coco(tmp_path, [im, dict(im, file_name="b.png")], [])
    with pytest.raises(DataError, match="id 1 is used by two images"):
        read_coco(p)


def test_negative_rle_run_is_refused(tmp_path):
    im = {"id": 1, "file_name": "a.png", "width": 4, "height": 3}
    p = _coco(tmp_path, [im], [{"id": 5, "image_id": 1, "segmentation": {"counts": [2, -1, 11], "size": [3, 4]}}])
    with pytest.raises(DataError, match=r"annotation 0 \(id 5\) has a negative RLE run"):
        read_coco(p)


# (annotation or image edit, expected words): each is refused in one line naming the entry.
ODD_COCO = [
    ({"image": {"id": None}}, r"image 0: id must be an integer or a string, got None"),
    ({"image": {"id": 1.5}}, r"image 0: id must be an integer"),
    ({"image": {"height": "30"}}, r"height must be a whole number, got '30'"),
    ({"image": {"width": 1e300}}, r"width must be"),
    ({"image": {"width": 10**6, "height": 10**6}}, r"more than temzoo reads as a mask"),
    ({"image": {"file_name": 7}}, r"file_name must be a file name"),
    ({"ann": {"image_id": "1"}}, r"annotation 0 \(id 3\) refers to unknown image_id '1'"),
    ({"ann": {"image_id": None}}, r"image_id must be an integer or a string, got None"),
    ({"ann": {"segmentation": [["2", "2", "12", "2", "12", "12"]]}}, r"polygon 0: coordinates must be numbers"),
    ({"ann": {"segmentation": [[2, 2, [12], 2, 12, 12]]}}, r"polygon 0: coordinates must be numbers"),
    ({"ann": {"segmentation": []}}, r"annotation 0 \(id 3\) has no segmentation polygon"),
    ({"ann": {"segmentation": {"counts": [1, 2], "size": [10**5, 10**5]}}}, r"RLE size .* differs"),
    ({"ann": {"segmentation": {"counts": [1, 2], "size": [10**9, 10**9]}}}, r"RLE size must be in \[1, 1048576\]"),
    ({"ann": {"segmentation": {"counts": [10**30], "size": [30, 40]}}}, r"RLE longer than"),
    ({"ann": {"segmentation": {"counts": [1.5, 2], "size": [30, 40]}}}, r"RLE counts must be whole"),
    ({"ann": {"category_id": [1]}}, r"category_id must be an integer or a string"),
    ({"ann": "text"}, r"annotation 0 must be an object"),
]


@pytest.mark.parametrize("edit,match", ODD_COCO)
def test_odd_coco_content_is_one_line_naming_the_entry(tmp_path, edit, match):
    im = {"id": 1, "file_name": "a.png", "width": 40, "height": 30, **edit.get("image", {})}
    ann = edit["ann"] if isinstance(edit.get("ann"), str) else {"id": 3, "image_id": 1, "segmentation": SQUARE,
                                                                  **edit.get("ann", {})}
    with pytest.raises(DataError, match=match) as err:
        read_coco(_coco(tmp_path, [im], [ann]))
    assert "coco.json" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text,match", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"images": [{"id": 1, "file_name": "a.png", "width": NaN, "height": 3}], "annotations": []}', "NaN"),
    ('{"images": [{"id": 1, "file_name": "a.png", "width": Infinity, "height": 3}], "annotations": []}', "Infinity"),
    ('{"images": [], "annotations": [], "x": ' + "9" * 5000 + "}", "cannot read COCO file"),
])
def test_coco_bombs_and_constants(tmp_path, text, match):
    (tmp_path / "c.json").write_text(text)
    with pytest.raises(DataError, match=match):
        read_coco(tmp_path / "c.json")
    (tmp_path / "latin.json").write_bytes('{"images": [], "annotations": [], "n": "\u00e9"}'.encode("latin-1"))
    with pytest.raises(DataError, match="cannot read COCO file latin.json"):
        read_coco(tmp_path / "latin.json")


@pytest.mark.parametrize("line,match", [
    ("0 nan 0.1 0.5 0.1 0.5 0.5", "line 1: coordinates must be finite"),
    ("0 inf 0.1 0.5 0.1 0.5 0.5", "line 1: coordinates must be finite"),
    ("999 0.1 0.1 0.5 0.1 0.5 0.5", "line 1: class 999 is outside"),
    ("-1 0.1 0.1 0.5 0.1 0.5 0.5", "line 1: class -1 is outside"),
    ("0 1e999999 0.1 0.5 0.1 0.5 0.5", "line 1: coordinates must be finite"),
])
def test_odd_yolo_lines(tmp_path, line, match):
    (tmp_path / "b.txt").write_text(line + "\n")
    with pytest.raises(DataError, match=match):
        read_yolo_seg(tmp_path / "b.txt", (64, 64))


def test_non_utf8_yolo_and_class_files(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "images" / "a.png")
    (tmp_path / "labels" / "a.txt").write_bytes(b"0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    (tmp_path / "labels" / "classes.txt").write_bytes("d\xe9faut\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"class names file classes.txt is not UTF-8"):
        find_pairs(tmp_path / "images", tmp_path / "labels")
    (tmp_path / "b.txt").write_bytes(b"0 0.1 0.1\xff 0.5 0.1 0.5 0.5\n")
    with pytest.raises(DataError, match=r"YOLO label file b.txt is not UTF-8"):
        read_yolo_seg(tmp_path / "b.txt", (8, 8))
