"""The one export bundle (temzoo.export): names after the source image, the full file set, calibrated contents."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from temzoo.export import build_bundle, bundle_name, export_prediction, overlay_rgb
from temzoo.predict import predict
from temzoo.types import Micrograph
from temzoo.zoo import load_model


def _blobs(h: int = 64, w: int = 80) -> np.ndarray:
    yy, xx = np.indices((h, w))
    img = np.random.default_rng(0).normal(0, 0.2, (h, w)).astype(np.float32)
    for cy, cx in ((20, 20), (40, 60)):
        img += ((yy - cy) ** 2 + (xx - cx) ** 2 < 80).astype(np.float32)
    return img


def test_bundle_name_is_the_stem_and_frames_are_numbered():
    assert bundle_name("/data/run 1/Au particles.dm4") == "Au particles"
    assert bundle_name("x/stack.tif", 3, 20) == "stack_frame003"
    assert bundle_name("../evil/..\\name?.png") == "name_"


def test_bundle_files_contents_and_calibration(tiny_checkpoint, tmp_path):
    ck = load_model(str(tiny_checkpoint))
    mg = Micrograph(_blobs(), 0.1, source=str(tmp_path / "blobs.tif"), title="blobs")
    pred = predict(ck, mg)
    # a threshold low enough that the random net marks something: the overlay must then differ from the grey image
    pred.mask = (pred.probability > np.median(pred.probability)).astype(np.uint8)
    written = export_prediction(tmp_path / "out", pred, mg)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(["blobs_mask.png", "blobs_mask.tif", "blobs_probability.tif", "blobs_confidence.tif",
                            "blobs_particles.csv", "blobs_summary.json", "blobs.hspy", "blobs_overlay.png"])
    out = tmp_path / "out"
    mask_tif = tifffile.TiffFile(out / "blobs_mask.tif")
    assert mask_tif.pages[0].dtype == np.uint8 and mask_tif.imagej_metadata["unit"] == "nm"
    np.testing.assert_array_equal(mask_tif.asarray(), pred.mask)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "blobs_mask.png")), pred.mask * 255)
    ov = np.asarray(Image.open(out / "blobs_overlay.png"))
    assert ov.shape == (64, 80, 3)
    fg = pred.mask > 0
    assert (ov[fg, 0] > ov[fg, 2]).all()  # tinted red where the mask is
    assert (ov[~fg, 0] == ov[~fg, 2]).all()  # grey elsewhere
    summary = json.loads((out / "blobs_summary.json").read_text())
    assert summary["image"] == str((tmp_path / "blobs.tif").resolve()) and summary["pixel_size_nm"] == 0.1
    assert summary["n_objects"] == len(written.table) and "metrics" in summary
    import hyperspy.api as hs

    s = hs.load(str(out / "blobs.hspy"))
    assert s.data.shape == (4, 64, 80) and s.axes_manager[1].scale == pytest.approx(0.1)
    assert s.axes_manager[1].units == "nm"
    assert list(s.metadata.temzoo.layers) == ["image", "mask", "probability", "confidence"]
    np.testing.assert_array_equal(s.data[1], pred.mask)


def test_importance_is_in_the_bundle_when_explained(tiny_checkpoint, tmp_path):
    from temzoo.explain import explain

    ck = load_model(str(tiny_checkpoint))
    mg = Micrograph(_blobs(), None, source="nocal.png")
    pred = predict(ck, mg)
    ex = explain(ck, mg, "gradcam", prediction=pred)
    b = build_bundle(pred, mg, explanation=ex)
    assert "nocal_importance.tif" in b.files and b.summary["explain"]["method"] == "gradcam"
    assert b.summary["pixel_size_nm"] is None


def test_overlay_of_flat_image_does_not_fail():
    ov = overlay_rgb(np.zeros((8, 8), np.float32), np.eye(8, dtype=np.uint8))
    assert ov.dtype == np.uint8 and ov[0, 0, 0] > ov[0, 0, 1]
