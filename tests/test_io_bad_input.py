"""Bad input gives one clean ReadError line (what is wrong, what to do), never another exception.

A focused set: missing/empty/unsupported/renamed files, truncated and bit-flipped real files, huge headers, NaN/inf,
spectra and complex data, unsafe upload names. (A broad fuzz run is a separate test.)
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from temzoo.errors import ReadError
from temzoo.io import read, read_bytes, safe_filename, scan

JEOL = "dm/particlespy/JEOL HAADF Image.dm4"
MULTI = "dm/rosettasciio/2D/multi_signal.dm3"
SER = "other-formats/ncempy/16_STOimage_1.ser"
EMD = "other-formats/scifidatasets/EMDReader_Image_FEI.emd"


def _one_line_error(path, match: str | None = None) -> str:
    with pytest.raises(ReadError) as info:
        read(path)
    msg = str(info.value)
    assert msg and "\n" not in msg and "Traceback" not in msg
    if match:
        assert match in msg, msg
    return msg


def _read_or_clean_error(path) -> None:
    """A damaged file may still be readable (a flipped pixel is just a pixel); anything else must be ReadError."""
    try:
        images = read(path)
    except ReadError as err:
        assert "\n" not in str(err)
        return
    for mg in images:
        assert mg.data.dtype == np.float32 and np.isfinite(mg.frame(0)).all()


def test_missing_empty_folder_unsupported(tmp_path):
    _one_line_error(tmp_path / "nope.dm4", "no such file")
    (tmp_path / "empty.dm3").write_bytes(b"")
    _one_line_error(tmp_path / "empty.dm3", "empty (0 bytes)")
    (tmp_path / "folder.dm4").mkdir()
    _one_line_error(tmp_path / "folder.dm4", "is a folder")
    (tmp_path / "notes.txt").write_text("hello")
    msg = _one_line_error(tmp_path / "notes.txt", "unsupported file type (.txt)")
    assert ".dm4" in msg  # says what is supported
    (tmp_path / "noext").write_bytes(b"1234")
    _one_line_error(tmp_path / "noext", "no extension")


def test_wrong_extension(tmp_path, shared_data):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "image.dm3").write_bytes((tmp_path / "a.png").read_bytes())
    _one_line_error(tmp_path / "image.dm3", "looks like PNG; rename it to .png")
    (tmp_path / "scan.png").write_bytes((shared_data / JEOL).read_bytes())
    _one_line_error(tmp_path / "scan.png", "looks like DigitalMicrograph")
    (tmp_path / "garbage.dm4").write_bytes(b"not a microscope file at all" * 10)
    _one_line_error(tmp_path / "garbage.dm4", "not a valid DigitalMicrograph file")
    (tmp_path / "garbage.mrc").write_bytes(b"\x01" * 100)  # MRC has no signature: the reader itself must fail
    _one_line_error(tmp_path / "garbage.mrc", "could not be read as MRC")


def test_spectra_only_and_complex_fft(shared_data):
    _one_line_error(shared_data / "dm/scifidatasets/DMReader_EELS_STO.dm4", "EELS spectrum")
    _one_line_error(shared_data / "dm/rosettasciio/2D/test_fft_packed_complex8.dm4", "complex values")


@pytest.mark.parametrize("rel", [JEOL, MULTI, SER, EMD])
@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.97])
def test_truncated_real_files(tmp_path, shared_data, rel, fraction):
    data = (shared_data / rel).read_bytes()
    path = tmp_path / Path(rel).name
    path.write_bytes(data[: int(len(data) * fraction)])
    # a truncated file never yields the full image silently; it is refused in one line
    _one_line_error(path)


@pytest.mark.parametrize("rel", [JEOL, MULTI, SER])
def test_bit_flipped_headers(tmp_path, shared_data, rel):
    data = bytearray((shared_data / rel).read_bytes())
    rng = np.random.default_rng(1234)
    # flips in the header/tag region (first 4 KB) and a few across the file, eight variants per file
    for k in range(8):
        damaged = bytearray(data)
        for pos in rng.integers(4, 4096, size=3).tolist() + rng.integers(4096, len(data), size=2).tolist():
            damaged[pos] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"flip{k}{Path(rel).suffix}"
        path.write_bytes(bytes(damaged))
        _read_or_clean_error(path)


def _png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (valid CRC) with one tiny data chunk: a decompression bomb header."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def test_huge_dimensions_refused_before_allocation(tmp_path):
    (tmp_path / "huge.png").write_bytes(_png_with_header(200_000, 150_000))
    _one_line_error(tmp_path / "huge.png", "larger than temzoo reads")
    (tmp_path / "wide.png").write_bytes(_png_with_header(70_000, 4))
    _one_line_error(tmp_path / "wide.png", "larger than temzoo reads")


def test_huge_tiff_header(tmp_path):
    import tifffile

    # a small real TIFF whose header is then edited to claim 65000 x 65000 pixels (the data is not there)
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.float32))
    with tifffile.TiffFile(path) as tif:
        offsets = [(tif.pages[0].tags[name].valueoffset, tif.pages[0].tags[name].dtype)
                   for name in ("ImageWidth", "ImageLength")]
    raw = bytearray(path.read_bytes())
    for offset, dtype in offsets:
        fmt = "<H" if int(dtype) == 3 else "<I"  # SHORT or LONG
        raw[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, 65000)
    path.write_bytes(bytes(raw))
    _one_line_error(path)


def test_nan_and_inf(tmp_path):
    import tifffile

    a = np.ones((16, 16), np.float32)
    a[3, 4] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", a)
    _one_line_error(tmp_path / "nan.tif", "1 of 256 pixels NaN or infinite")
    b = np.ones((2, 16, 16), np.float32)
    b[1, 0, 0] = np.inf
    tifffile.imwrite(tmp_path / "inf_stack.tif", b)
    _one_line_error(tmp_path / "inf_stack.tif", "NaN or infinite")


def test_upload_names_are_sanitised(tmp_path, shared_data):
    assert safe_filename("../../etc/passwd.dm4") == "passwd.dm4"
    assert safe_filename("C:\\Users\\me\\scan 01.DM4") == "scan 01.dm4"
    assert safe_filename("..") == "upload"
    assert "/" not in safe_filename("a/b\0c.png") and "\0" not in safe_filename("a/b\0c.png")
    assert safe_filename("$(rm -rf ~);.tif") == "_(rm -rf _)_.tif"
    assert len(safe_filename("x" * 1000 + ".dm3")) <= 130
    data = (shared_data / JEOL).read_bytes()
    mg = read_bytes(data, "/tmp/../../../root/evil.dm4")[0]
    assert mg.source == "evil.dm4" and mg.pixel_size_nm == pytest.approx(1.2490136, rel=1e-6)
    with pytest.raises(ReadError, match="empty"):
        read_bytes(b"", "x.dm4")
    with pytest.raises(ReadError, match="unsupported file type"):
        read_bytes(data, "evil.exe")
    with pytest.raises(ReadError, match=r"\.emi file needs its \.ser"):
        read_bytes((shared_data / "other-formats/ncempy/16_STOimage.emi").read_bytes(), "16_STOimage.emi")


def test_scan_reports_skips(shared_data):
    result = scan(shared_data / MULTI)
    assert len(result.micrographs) == 1 and len(result.skipped) == 1
    assert "1D plot" in result.skipped[0].reason
