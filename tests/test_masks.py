"""Mask formats: PNG/TIFF/JPEG/DM masks, COCO polygons, YOLO-seg text; bad masks give DataError."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from temzoo.errors import DataError
from temzoo.io.masks import mask_to_classes, rasterize_polygons, read_coco, read_mask, read_yolo_seg, write_mask


def _png(path, arr, mode=None):
    Image.fromarray(arr, mode=mode).save(path)
    return path


def test_binary_255_and_01_and_bool(tmp_path):
    m = np.zeros((20, 30), np.uint8)
    m[5:10, 3:9] = 255
    out = read_mask(_png(tmp_path / "a.png", m))
    assert out.dtype == np.uint8 and out.shape == (20, 30)
    assert set(np.unique(out)) == {0, 1} and out.sum() == 30
    assert np.array_equal(read_mask(_png(tmp_path / "b.png", (m > 0).astype(np.uint8))), out)
    assert np.array_equal(mask_to_classes(m > 0), out)


def test_class_index_and_palette_png(tmp_path):
    m = np.zeros((16, 16), np.uint8)
    m[:, 4:8] = 1
    m[:, 8:12] = 2
    m[:, 12:] = 3
    assert np.array_equal(read_mask(_png(tmp_path / "idx.png", m)), m)
    im = Image.fromarray(m, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    im.save(tmp_path / "pal.png")
    assert np.array_equal(read_mask(tmp_path / "pal.png"), m)


def test_rgb_with_equal_channels_is_accepted_unequal_is_refused(tmp_path):
    m = np.zeros((12, 12), np.uint8)
    m[2:6, 2:6] = 255
    rgb = np.stack([m, m, m], -1)
    assert read_mask(_png(tmp_path / "rgb.png", rgb)).sum() == 16
    rgb[0, 0] = (255, 0, 0)
    with pytest.raises(DataError, match="colour image"):
        read_mask(_png(tmp_path / "colour.png", rgb))


def test_grey_image_is_not_a_mask(tmp_path):
    grey = (np.arange(64 * 64) % 251).reshape(64, 64).astype(np.uint8)
    with pytest.raises(DataError, match="expected binary 0/255 or class indices"):
        read_mask(_png(tmp_path / "grey.png", grey))
    with pytest.raises(DataError, match="0/255"):
        read_mask(_png(tmp_path / "three.png", np.array([[0, 1, 255]], np.uint8)))


def test_tiff_float_masks(tmp_path):
    m = np.zeros((10, 10), np.float32)
    m[3:5] = 2.0
    tifffile.imwrite(tmp_path / "m.tif", m)
    assert np.array_equal(read_mask(tmp_path / "m.tif"), m.astype(np.uint8))
    tifffile.imwrite(tmp_path / "p.tif", np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10))
    with pytest.raises(DataError, match="non-integer"):
        read_mask(tmp_path / "p.tif")


def test_jpeg_mask_is_thresholded(tmp_path):
    yy, xx = np.mgrid[:64, :64]
    m = np.where((yy - 32) ** 2 + (xx - 30) ** 2 < 16**2, 255, 0).astype(np.uint8)
    Image.fromarray(m).save(tmp_path / "m.jpg", quality=60)
    raw = np.asarray(Image.open(tmp_path / "m.jpg"))
    assert len(np.unique(raw)) > 2  # JPEG really did smear the values
    out = read_mask(tmp_path / "m.jpg")
    assert set(np.unique(out)) == {0, 1}
    assert abs(int(out.sum()) - int((m > 0).sum())) < 40


def test_dm_mask_via_reader(shared_data):
    out = read_mask(shared_data / "dm" / "rosettasciio" / "2D" / "test-6.dm3")  # uint8 2x2 image 1..4
    assert out.tolist() == [[1, 2], [3, 4]]


def test_unreadable_and_missing_masks(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read mask bad.png"):
        read_mask(tmp_path / "bad.png")
    with pytest.raises(DataError, match="does not exist"):
        read_mask(tmp_path / "nope.png")


def test_write_mask_roundtrip(tmp_path):
    m = np.zeros((8, 9), np.uint8)
    m[1:3, 1:4] = 1
    p = write_mask(tmp_path / "sub" / "m.png", m)
    assert np.asarray(Image.open(p)).max() == 255  # binary masks stay viewable
    assert np.array_equal(read_mask(p), m)
    m3 = m.copy()
    m3[5:, 5:] = 2
    assert np.array_equal(read_mask(write_mask(tmp_path / "m3.png", m3)), m3)


def test_rasterize_polygon_area_and_bad_polygons():
    sq = np.array([[10, 10], [30, 10], [30, 20], [10, 20]], float)  # 20 x 10 pixel square (corner coordinates)
    m = rasterize_polygons([(1, sq)], (40, 50))
    assert 200 <= m.sum() <= 21 * 11 and m[15, 20] == 1 and m[5, 5] == 0 and m[21, 20] == 0
    with pytest.raises(DataError, match="at least 3"):
        rasterize_polygons([(1, sq[:2])], (40, 50))
    with pytest.raises(DataError, match="outside"):
        rasterize_polygons([(1, sq * 10)], (40, 50))


def _coco(tmp_path, annotations, images=None):
    data = {"images": images or [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
            "annotations": annotations, "categories": [{"id": 7, "name": "loop"}, {"id": 9, "name": "void"}]}
    p = tmp_path / "coco.json"
    p.write_text(json.dumps(data))
    return p


def test_coco_polygons_classes_and_rle(tmp_path):
    rle = np.zeros((30, 40), bool)
    rle[0:3, 35:40] = True
    flat = rle.T.ravel()  # column-major
    counts, val, run = [], False, 0
    for v in flat:
        if v != val:
            counts.append(run)
            run, val = 0, v
        run += 1
    counts.append(run)
    p = _coco(tmp_path, [
        {"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]]},
        {"id": 2, "image_id": 1, "category_id": 9, "segmentation": [[20, 20, 30, 20, 30, 28]]},
        {"id": 3, "image_id": 1, "category_id": 7, "segmentation": {"counts": counts, "size": [30, 40]}},
    ])
    masks, names = read_coco(p)
    assert names == ["background", "loop", "void"]
    m = masks["a.png"]
    assert m.shape == (30, 40)
    assert m[5, 5] == 1 and m[26, 28] == 2 and m[0, 0] == 0
    assert (m[0:3, 35:40] == 1).all()


@pytest.mark.parametrize("ann,match", [
    ({"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[2, 2, 12, 2, 12]]}, "odd number"),
    ({"id": 1, "image_id": 5, "category_id": 7, "segmentation": [[2, 2, 12, 2, 12, 12]]}, "unknown image_id"),
    ({"id": 1, "image_id": 1, "category_id": 3, "segmentation": [[2, 2, 12, 2, 12, 12]]}, "unknown category_id"),
    ({"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[2, 2, 400, 2, 400, 300]]}, "outside"),
    ({"id": 1, "image_id": 1, "category_id": 7, "segmentation": {"counts": "abc", "size": [30, 40]}}, "compressed RLE"),
])
def test_coco_broken_annotations(tmp_path, ann, match):
    with pytest.raises(DataError, match=match):
        read_coco(_coco(tmp_path, [ann]))


def test_coco_not_a_coco_file(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(DataError, match="not a COCO"):
        read_coco(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{broken")
    with pytest.raises(DataError, match="cannot read COCO"):
        read_coco(tmp_path / "y.json")


def test_real_coco_matches_shipped_masks(shared_data):
    """The steel set's COCO polygons rasterise to (nearly) its own binary masks."""
    root = shared_data / "labeled" / "steel-dislocation-loops"
    masks, names = read_coco(root / "instances_coco.json")
    assert names == ["background", "hcloop"] and len(masks) == 16
    for name in ("1.png", "7.png"):
        ours, theirs = masks[name] > 0, read_mask(root / "masks" / name) > 0
        iou = (ours & theirs).sum() / (ours | theirs).sum()
        assert iou > 0.93, (name, iou)


def test_yolo_seg(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n\n2 0.6 0.6 0.9 0.6 0.9 0.9\n")
    m = read_yolo_seg(p, (100, 200))
    assert m[30, 50] == 1 and m[70, 170] == 3 and m[85, 130] == 0 and m[95, 5] == 0
    assert abs(int((m == 1).sum()) - 40 * 80) < 200
    (tmp_path / "empty.txt").write_text("")
    assert read_yolo_seg(tmp_path / "empty.txt", (10, 10)).sum() == 0


@pytest.mark.parametrize("line,match", [
    ("0 0.1 0.2 0.3 0.4", "even number"),
    ("0 0.1 0.1 0.5 0.1 0.5", "even number"),
    ("x 0.1 0.1 0.5 0.1 0.5 0.5", "expected 'class"),
    ("0 10 10 50 10 50 50", "normalised"),
])
def test_yolo_bad_lines(tmp_path, line, match):
    (tmp_path / "b.txt").write_text(line + "\n")
    with pytest.raises(DataError, match=match):
        read_yolo_seg(tmp_path / "b.txt", (64, 64))
