"""Reader matrix: every real file in ../shared/data/dm and ../shared/data/other-formats, with its expected outcome.

The expectations follow what HyperSpy/RosettaSciIO report for each file (../shared/data/README.md) and the rules in
docs/READING.md. A file added to those folders without an entry here fails ``test_every_shared_file_is_listed``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from temzoo.errors import ReadError
from temzoo.io import read, read_bytes, read_micrograph, scan

# DM dtype test files (rosettasciio 2D/test-N, 3D/test-N): N -> dtype in the file
DM_DTYPES = {1: "int16", 2: "float32", 3: "complex64", 5: "complex64", 6: "uint8", 7: "int32", 8: "rgba8",
             9: "int8", 10: "uint16", 11: "uint32", 12: "float64", 13: "complex128", 14: "bool", 23: "rgba8",
             27: "complex64", 28: "complex128"}
DM4_ONLY = {27, 28}


def ok(px: float | None, shape: tuple[int, int], frames: int = 1, dtype: str | None = None, **meta):
    return {"ok": True, "px": px, "shape": shape, "frames": frames, "dtype": dtype, "meta": meta}


def err(*fragments: str):
    return {"ok": False, "fragments": fragments}


EXPECTED: dict[str, dict] = {
    # real images, calibrated
    "dm/rosettasciio/2D/multi_signal.dm3": ok(0.017751578, (512, 512), dtype="uint16", voltage_kv=300.0,
                                              microscope="Example Microscope", date="2019-12-10T15:32:41"),
    "dm/particlespy/JEOL HAADF Image.dm4": ok(1.2490136, (112, 112), dtype="float32", voltage_kv=80.0,
                                              microscope="JEOL COM", magnification=250000.0),
    "dm/rosettasciio/2D/test_STEM_image.dm3": ok(0.248538, (68, 68), dtype="uint32", voltage_kv=200.0),
    "dm/rosettasciio/test_stackbuilder_imagestack.dm3": ok(59.98290, (2, 16), frames=3, dtype="uint32"),
    "dm/rosettasciio/2D/test-MonarcCL_mono-image.dm4": ok(18325.35, (2, 2), dtype="uint16", voltage_kv=3.0),
    **{f"dm/rosettasciio/Fei HAADF-{loc}_location.dm3": ok(5.506073, (4, 16), dtype="uint16", voltage_kv=200.0)
       for loc in ("DE", "FR", "MX", "UK")},
    # real images without calibration
    "dm/scifidatasets/DMReader_Image_SI-Survey.dm3": ok(None, (512, 512), dtype="uint32"),
    "dm/scifidatasets/DMReader_SI-HAADF.dm3": ok(None, (1568, 192), dtype="float32"),
    # spectra, spectrum images, plots: no image
    "dm/scifidatasets/DMReader_EELS_STO.dm4": err("EELS spectrum", "no usable real-space image"),
    "dm/ncempy/08_carbon.dm3": err("EELS spectrum"),
    "dm/rosettasciio/1D/test-EELS_spectrum.dm3": err("EELS spectrum"),
    "dm/rosettasciio/1D/test-EDS_spectrum.dm3": err("EDS_TEM spectrum"),
    "dm/rosettasciio/3D/EELS_SI.dm4": err("spectrum image"),
    "dm/rosettasciio/2D/test-MonarcCL_spectrum-SI.dm4": err("spectrum image"),
    "dm/rosettasciio/2D/test-MonoCL_spectrum-SI.dm4": err("spectrum image"),
    # reciprocal space and complex FFTs
    "dm/rosettasciio/2D/test_diffraction_pattern.dm3": err("reciprocal-space", "1/nm"),
    "dm/rosettasciio/2D/test_diffraction_pattern_tags_removed.dm3": err("reciprocal-space", "1/nm"),
    "dm/rosettasciio/2D/test_fft_packed_complex8.dm4": err("complex values"),
    # non-square pixels: refused (docs/READING.md)
    "dm/ncempy/dmTest_3D_int16_64,65,66.dm3": err("non-square pixels", "0.002 nm/px", "3 nm/px"),
    "dm/ncempy/dmTest_3D_int16_64,65,66.dm4": err("non-square pixels", "0.002 nm/px", "3 nm/px"),
    "dm/ncempy/dmTest_float32_nonSquare_diffPixelSize.dm3": err("non-square pixels", "1 nm/px", "0.2 nm/px"),
    "dm/ncempy/dmTest_float32_nonSquare_diffPixelSize.dm4": err("non-square pixels", "1 nm/px", "0.2 nm/px"),
    # other formats
    "other-formats/ncempy/16_STOimage_1.ser": ok(0.0100127, (1024, 1024), dtype="uint16"),
    "other-formats/ncempy/16_STOimage.emi": ok(0.0100127, (1024, 1024), dtype="uint16", voltage_kv=80.0,
                                               microscope="TitanCubed D3147 S-Twin"),
    "other-formats/ncempy/Acquisition_18.emd": ok(0.0122465, (1024, 1024), dtype="uint16", voltage_kv=200.0,
                                                  microscope="TEAM 0.5"),  # Berkeley EMD, units 'n_m'
    "other-formats/ncempy/temp.mrc": ok(0.2, (128, 128), frames=3, dtype="float32"),
    "other-formats/scifidatasets/EMDReader_Image_FEI.emd": ok(5.3024148, (512, 512), dtype="uint16",
                                                              voltage_kv=200.0, microscope="Talos",
                                                              date="2017-03-06T09:56:41"),  # Velox EMD
}
for _dim, _frames in (("2D", 1), ("3D", 2)):
    for _n, _dtype in DM_DTYPES.items():
        for _ext in ("dm4",) if _n in DM4_ONLY else ("dm3", "dm4"):
            _key = f"dm/rosettasciio/{_dim}/test-{_n}.{_ext}"
            EXPECTED[_key] = err("complex values") if _dtype.startswith("complex") else ok(
                None, (2, 2), frames=_frames, dtype=_dtype)


def _data_files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for sub in ("dm", "other-formats")
        for p in (root / sub).rglob("*")
        if p.is_file() and p.name != "LICENSE"
    }


def test_every_shared_file_is_listed(shared_data):
    files = _data_files(shared_data)
    assert files - set(EXPECTED) == set(), "shared files without an expected outcome"
    assert set(EXPECTED) - files == set(), "expected outcomes for files that are not there"


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_reader_matrix(shared_data, rel):
    exp = EXPECTED[rel]
    path = shared_data / rel
    if not exp["ok"]:
        with pytest.raises(ReadError) as info:
            read(path)
        msg = str(info.value)
        assert "\n" not in msg and path.name in msg
        for fragment in exp["fragments"]:
            assert fragment in msg
        return
    images = read(path)
    mg = images[0]
    assert mg.data.dtype == np.float32
    assert mg.shape == exp["shape"]
    assert mg.n_frames == exp["frames"]
    assert mg.data.ndim == (2 if exp["frames"] == 1 else 3)
    assert mg.original_dtype == exp["dtype"]
    assert not mg.reciprocal
    assert np.isfinite(mg.frame(0)).all()
    if exp["px"] is None:
        assert mg.pixel_size_nm is None and not mg.calibrated
    else:
        assert mg.calibrated and mg.pixel_size_nm == pytest.approx(exp["px"], rel=1e-5)
    for key, value in exp["meta"].items():
        assert mg.metadata[key] == (pytest.approx(value) if isinstance(value, float) else value)
    assert mg.source == str(path)


def test_multi_signal_keeps_image_drops_plot(shared_data):
    path = shared_data / "dm/rosettasciio/2D/multi_signal.dm3"
    result = scan(path)
    assert [m.index for m in result.micrographs] == [0]
    assert [(s.index, s.title) for s in result.skipped] == [(1, "Plot")]
    mg = result.micrographs[0]
    assert mg.title == "HAADF" and mg.metadata["format"] == "DigitalMicrograph"
    # the pixels are the file's own uint16 values, only converted to float32
    from rsciio.digitalmicrograph import file_reader

    raw = file_reader(str(path))[0]["data"]
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(mg.data, raw.astype(np.float32))
    with pytest.raises(ReadError, match="entry 1 cannot be used: 1D plot"):
        read_micrograph(path, index=1)
    with pytest.raises(ReadError, match="no image entry 7"):
        read_micrograph(path, index=7)
    assert read_micrograph(path, index=0).pixel_size_nm == pytest.approx(0.017751578)


def test_diffraction_pattern_is_flagged_not_a_micrograph(shared_data):
    path = shared_data / "dm/rosettasciio/2D/test_diffraction_pattern.dm3"
    with pytest.raises(ReadError, match="reciprocal-space image"):
        read_micrograph(path)
    mg = read_micrograph(path, allow_reciprocal=True)
    assert mg.reciprocal and mg.pixel_size_nm is None
    assert mg.metadata["reciprocal_scale"] == pytest.approx(0.174433, rel=1e-4)
    assert [m.reciprocal for m in read(path, include_reciprocal=True)] == [True]


def test_stack_frames_eager_and_lazy_agree(shared_data):
    path = shared_data / "other-formats/ncempy/temp.mrc"
    eager = read_micrograph(path, lazy=False)
    lazy = read_micrograph(path, lazy=True)
    assert isinstance(eager.data, np.ndarray)
    assert type(lazy.data).__module__.startswith("dask")  # frames stay on disk until asked for
    assert lazy.n_frames == eager.n_frames == 3
    for i in range(3):
        np.testing.assert_array_equal(lazy.frame(i), eager.frame(i))
    assert lazy.frame(2).dtype == np.float32


def test_locales_read_identically(shared_data):
    imgs = [read_micrograph(shared_data / f"dm/rosettasciio/Fei HAADF-{loc}_location.dm3")
            for loc in ("DE", "FR", "MX", "UK")]
    assert len({m.pixel_size_nm for m in imgs}) == 1
    assert math.isclose(imgs[0].pixel_size_nm, 5.506073, rel_tol=1e-6)


def test_upload_bytes_match_path_read(shared_data):
    path = shared_data / "dm/particlespy/JEOL HAADF Image.dm4"
    from_bytes = read_bytes(path.read_bytes(), "../../evil/JEOL HAADF Image.dm4")
    assert len(from_bytes) == 1
    mg = from_bytes[0]
    assert mg.source == "JEOL HAADF Image.dm4"  # sanitised name, never the upload's path
    assert mg.pixel_size_nm == pytest.approx(1.2490136, rel=1e-6)
    np.testing.assert_array_equal(mg.data, read_micrograph(path).data)


# ---------------------------------------------------------------------------------------------------------------
# formats without shared samples: written here with tifffile / PIL (tiny)


def test_tiff_calibrations(tmp_path):
    import tifffile

    a = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64)
    tifffile.imwrite(tmp_path / "nm.tif", a, imagej=True, resolution=(1 / 0.25, 1 / 0.25), metadata={"unit": "nm"})
    tifffile.imwrite(tmp_path / "um.tif", a, imagej=True, resolution=(1 / 0.002, 1 / 0.002),
                     metadata={"unit": "micron"})
    tifffile.imwrite(tmp_path / "plain.tif", a)
    tifffile.imwrite(tmp_path / "stack.tiff", np.stack([a, a + 1, a + 2]), imagej=True,
                     resolution=(2.0, 2.0), metadata={"unit": "nm", "axes": "ZYX"})
    nm = read_micrograph(tmp_path / "nm.tif")
    assert nm.pixel_size_nm == pytest.approx(0.25) and nm.original_dtype == "uint16"
    np.testing.assert_array_equal(nm.data, a.astype(np.float32))
    assert read_micrograph(tmp_path / "um.tif").pixel_size_nm == pytest.approx(2.0)
    assert read_micrograph(tmp_path / "plain.tif").pixel_size_nm is None
    stack = read_micrograph(tmp_path / "stack.tiff")
    assert stack.n_frames == 3 and stack.pixel_size_nm == pytest.approx(0.5)
    np.testing.assert_array_equal(stack.frame(2), (a + 2).astype(np.float32))


def test_rgb_stored_greyscale_gives_one_channel(tmp_path):
    from PIL import Image

    g = (np.arange(32 * 40) % 251).astype(np.uint8).reshape(32, 40)
    Image.fromarray(np.stack([g, g, g], -1)).save(tmp_path / "grey_rgb.png")
    Image.fromarray(np.stack([g, g, g, np.full_like(g, 255)], -1)).save(tmp_path / "grey_rgba.png")
    for name in ("grey_rgb.png", "grey_rgba.png"):
        mg = read_micrograph(tmp_path / name)
        assert mg.data.shape == (32, 40)
        np.testing.assert_array_equal(mg.data, g.astype(np.float32))
        assert "one channel" in mg.metadata["colour"]
    colour = np.stack([g, np.zeros_like(g), np.full_like(g, 200)], -1)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    mg = read_micrograph(tmp_path / "colour.png")
    assert "luminance" in mg.metadata["colour"]
    np.testing.assert_allclose(mg.data, 0.299 * g + 0.114 * 200, atol=1e-3)


def test_png_16bit_and_jpeg(tmp_path):
    from PIL import Image

    a = (np.arange(30 * 20, dtype=np.uint16) * 97).reshape(30, 20)
    Image.fromarray(a).save(tmp_path / "deep.png")
    mg = read_micrograph(tmp_path / "deep.png")
    np.testing.assert_array_equal(mg.data, a.astype(np.float32))
    assert mg.pixel_size_nm is None and mg.title == "deep"
    Image.fromarray((a % 256).astype(np.uint8)).save(tmp_path / "x.jpeg", quality=95)
    assert read_micrograph(tmp_path / "x.jpeg").shape == (30, 20)


def test_real_jpeg_stored_as_rgb(shared_data):
    path = next(iter(sorted((shared_data / "labeled/uo2-grain-boundaries/images").glob("*.jpg"))), None)
    if path is None:
        pytest.skip("no UO2 JPEGs in the shared data")
    mg = read_micrograph(path)
    assert mg.data.ndim == 2 and mg.data.dtype == np.float32 and mg.pixel_size_nm is None


def test_dpi_tiff_is_uncalibrated(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "dpi.tif", dpi=(72, 72))
    assert read_micrograph(tmp_path / "dpi.tif").pixel_size_nm is None  # print resolution is not a pixel size
