"""One labelled-set reader (temzoo.labelled): training, evaluate, the Label page and the recipes pair files alike."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from temzoo.errors import DataError
from temzoo.labelled import find_pairs, mask_pairs, read_label, split_last
from temzoo.metrics import evaluate_folders
from temzoo.train import labelset
from temzoo.train.data import read_set
from temzoo.zoo.checkpoint import load_checkpoint


def _set(tmp_path, names: dict[str, str]):
    """images/<stem>.png with masks/<mask name> (a disc)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    yy, xx = np.mgrid[:64, :64]
    for stem, mask_name in names.items():
        Image.fromarray(((yy + xx) % 255).astype(np.uint8)).save(tmp_path / "images" / f"{stem}.png")
        if mask_name:
            disc = ((yy - 32) ** 2 + (xx - 32) ** 2 < 200).astype(np.uint8) * 255
            Image.fromarray(disc).save(tmp_path / "masks" / mask_name)
    return tmp_path / "images", tmp_path / "masks"


def test_training_evaluate_and_label_page_accept_the_same_mask_names(tmp_path, tiny_checkpoint):
    """The drift this module removes: evaluate refused ``a_mask.png`` that training accepted."""
    images, masks = _set(tmp_path, {"a": "a_mask.png", "b": "b.png", "10": "10_gt.png"})
    names = {p.stem for p, _ in find_pairs(images, masks).pairs}
    assert names == {"a", "b", "10"}
    assert {it.name for it in read_set(images, masks).items} == names
    assert [p.name for p in labelset.list_pairs(tmp_path)] == ["a", "b", "10"]  # natural order
    res = evaluate_folders(load_checkpoint(tiny_checkpoint), images, masks, pixel_size_nm=0.05)
    assert res["n_images"] == 3


def test_missing_labels_warn_for_training_and_fail_for_evaluate(tmp_path):
    images, masks = _set(tmp_path, {"a": "a.png", "b": ""})
    assert find_pairs(images, masks).warnings == [f"1 images in {images} have no label and are not used"]
    with pytest.raises(DataError, match="b.png"):
        find_pairs(images, masks, require_all=True)
    with pytest.raises(DataError, match="not found"):
        find_pairs(images, tmp_path / "nowhere")
    with pytest.raises(DataError, match="does not exist"):
        find_pairs(tmp_path / "nowhere", masks)


def test_read_label_checks_the_size_and_split_last_holds_out_the_last(tmp_path):
    images, masks = _set(tmp_path, {str(i): f"{i}.png" for i in (1, 2, 3, 10)})
    with pytest.raises(DataError, match="mask for x.png is 64x64 but the image is 32x32"):
        read_label(masks / "1.png", (32, 32), "x.png")
    pool, test = split_last(images, masks, 2)
    assert [p.stem for p, _ in pool] == ["1", "2"] and [p.stem for p, _ in test] == ["3", "10"]
    assert len(mask_pairs(images, masks)) == 4


def test_saving_a_pair_never_replaces_a_file_already_there(tmp_path):
    """A name in use, as a pair or as an image left without a mask, gets a new one; nothing already there changes."""
    img = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:16] = 255
    first = labelset.add_pair(tmp_path, img, mask, "grain")
    (tmp_path / "images" / "loose.png").write_bytes(b"the user's own file")
    kept = (first.image.read_bytes(), first.mask.read_bytes())
    second = labelset.add_pair(tmp_path, img[::-1].copy(), mask, "grain")
    third = labelset.add_pair(tmp_path, img, mask, "loose")
    assert (second.name, third.name) == ("grain-2", "loose-2")
    assert (first.image.read_bytes(), first.mask.read_bytes()) == kept
    assert (tmp_path / "images" / "loose.png").read_bytes() == b"the user's own file"
