"""Pixel size given by a person (#14.1): one check, every command that reads images, honest units downstream."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from temzoo.cli import main
from temzoo.errors import DataError
from temzoo.io import read_micrograph
from temzoo.io.units import check_pixel_size


@pytest.mark.parametrize("bad", ["nan", "inf", "-1", "0", "abc", "1e9", "1e-9"])
def test_check_pixel_size_refuses_with_one_line(bad):
    with pytest.raises(DataError) as e:
        check_pixel_size(bad)
    assert "\n" not in str(e.value)


def test_with_pixel_size_keeps_the_files_value(shared_data):
    mg = read_micrograph(shared_data / "labeled/steel-dislocation-loops/images/1.png")
    assert mg.pixel_size_nm is None
    given = mg.with_pixel_size(0.39)
    assert given.pixel_size_nm == 0.39 and given.calibrated
    assert given.metadata["file_pixel_size_nm"] is None and given.metadata["pixel_size_source"] == "given"
    assert mg.pixel_size_nm is None  # the original is untouched
    assert mg.with_pixel_size(None) is mg


@pytest.mark.parametrize("cmd", [["predict", "x.png", "--model", "m", "--out", "o"],
                                 ["inspect", "x.png"],
                                 ["evaluate", "--model", "m", "--images", "i", "--masks", "k"],
                                 ["finetune", "--images", "i", "--masks", "k", "--base", "scratch",
                                  "--strategy", "full", "--out", "o"],
                                 ["pretrain-denoise", "--images", "i", "--out", "o"]])
@pytest.mark.parametrize("bad", ["nan", "-0.39", "0"])
def test_every_image_command_validates_pixel_size(cmd, bad, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--pixel-size-nm", bad])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: argument --pixel-size-nm")


def test_predict_uncalibrated_png_sizes_in_nm(tiny_checkpoint, tmp_path, capsys):
    img = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    out = tmp_path / "o"
    assert main(["predict", str(tmp_path / "a.png"), "--model", str(tiny_checkpoint), "--out", str(out),
                 "--pixel-size-nm", "0.1"]) == 0
    s = json.loads((out / "a_summary.json").read_text())
    assert s["pixel_size_nm"] == 0.1 and s["resampled_to_nm"] == 0.05
    err = capsys.readouterr().err
    assert "uncalibrated" not in err  # the given pixel size is used, not the model's assumed one


def test_inspect_override(shared_data, capsys):
    path = shared_data / "other-formats/ncempy/16_STOimage_1.ser"
    assert main(["inspect", str(path), "--json", "--pixel-size-nm", "0.02"]) == 0
    d = json.loads(capsys.readouterr().out)[0]
    assert d["pixel_size_nm"] == 0.02 and d["file_pixel_size_nm"] == pytest.approx(read_micrograph(path).pixel_size_nm)


def test_segment_caption_never_prints_a_missing_pixel_size():
    from temzoo.types import Prediction
    from ui.segment import scale_line

    z = np.zeros((4, 4), np.float32)
    for px, model, f in ((None, None, 1.0), (None, None, 0.5), (0.39, None, 0.5), (0.39, 0.05, 7.8), (0.05, 0.05, 1)):
        line = scale_line(Prediction(z, z, z, px, model, info={"scale_factor": f}))
        assert "- nm" not in line and "None" not in line
    assert "0.39 nm/px" in scale_line(Prediction(z, z, z, 0.39, 0.05, info={"scale_factor": 7.8}))
