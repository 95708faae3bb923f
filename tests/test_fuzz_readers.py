"""Fuzzing the readers: hundreds of damaged copies of every real file, fed to the library and the CLI.

Every variant must give a usable micrograph or ONE clean error line (ReadError in the library, ``error: ...`` + exit
2 from the CLI), within a time limit, with no traceback and no crash (the app side is tests/test_fuzz_app.py).
Variants are made with fixed seeds (crc32 of the file's path), so a failure names a variant that can be rebuilt.

Besides damaged files: degenerate arrays (0-size, 1x1, 100000x10, NaN/inf, integer extremes, float16 overflow, a
500-frame stack read lazily), masks of the wrong size or with unexpected values, and COCO files with broken polygons.
A summary (counts, outcomes, slowest inputs) is written to test-artifacts/hardening.json (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from temzoo.errors import DataError, ReadError, TemzooError
from temzoo.io import scan

REPO = Path(__file__).resolve().parent.parent
PER_FILE_LIMIT_S = 20.0  # generous: the CI machine is 2 shared cores; a hang is what this catches
SUMMARY = REPO / "test-artifacts" / "hardening.json"


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """SIGALRM-based limit for one input (pytest runs tests in the main thread, where alarms are delivered)."""
    def _raise(signum, frame):
        raise _Timeout(f"over {seconds:g} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _record(section: str, **data) -> None:
    """Merge one section into the summary file (shared with test_fuzz_app.py and the other hardening tests)."""
    SUMMARY.parent.mkdir(exist_ok=True)
    try:
        summary = json.loads(SUMMARY.read_text())
    except (OSError, ValueError):
        summary = {}
    summary[section] = data
    SUMMARY.write_text(json.dumps(summary, indent=1))


# ----------------------------------------------------------------------------------------------------- variants


def real_files(shared: Path) -> list[Path]:
    return [p for d in ("dm", "other-formats") for p in sorted((shared / d).rglob("*"))
            if p.is_file() and p.name != "LICENSE"]


def _seed(rel: str, k: int) -> int:
    return zlib.crc32(f"{rel}#{k}".encode())


def variants(data: bytes, rel: str, headers: dict[str, bytes]) -> list[tuple[str, bytes, str]]:
    """(kind, bytes, suffix) damaged copies of one file: truncations, bit flips, overwritten runs, swapped headers."""
    suffix = Path(rel).suffix.lower()
    n = len(data)
    out: list[tuple[str, bytes, str]] = []
    rng = np.random.default_rng(_seed(rel, 0))
    # truncations: inside the header, in the middle, just before the end
    for frac in (rng.uniform(0.001, 0.05), rng.uniform(0.2, 0.8), rng.uniform(0.9, 0.999)):
        cut = max(1, int(n * frac))
        out.append((f"truncate@{cut}", data[:cut], suffix))
    # bit flips: most in the header/tag region (where they change shapes and offsets), a few anywhere
    for k in range(3):
        r = np.random.default_rng(_seed(rel, 10 + k))
        b = bytearray(data)
        head = min(n, 4096)
        for pos in r.integers(0, head, size=4 + 2 * k).tolist() + r.integers(0, n, size=2).tolist():
            b[pos] ^= 1 << int(r.integers(0, 8))
        out.append((f"bitflip{k}", bytes(b), suffix))
    # a run of random bytes over the header region (a damaged sector)
    r = np.random.default_rng(_seed(rel, 20))
    b = bytearray(data)
    start = int(r.integers(0, max(1, min(n, 2048) - 64)))
    run = r.integers(0, 256, size=min(64, n - start), dtype=np.uint8).tobytes()
    b[start:start + len(run)] = run
    out.append((f"overwrite@{start}", bytes(b), suffix))
    # header swap: another format's first 512 bytes over this file's (the extension stays)
    others = [s for s in headers if s != suffix]
    other = others[int(r.integers(0, len(others)))]
    h = headers[other]
    out.append((f"header-from{other}", h + data[len(h):], suffix))
    # name swap: this file's bytes under another format's extension
    out.append((f"renamed-to{other}", data, other))
    return out


def _all_variants(shared: Path) -> list[tuple[str, str, bytes, str]]:
    files = real_files(shared)
    headers: dict[str, bytes] = {}
    for p in files:
        headers.setdefault(p.suffix.lower(), p.read_bytes()[:512])
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    headers[".png"] = buf.getvalue()[:512]
    out = []
    for p in files:
        rel = str(p.relative_to(shared))
        for kind, data, suffix in variants(p.read_bytes(), rel, headers):
            out.append((rel, kind, data, suffix))
    return out


def _check_result(result) -> None:
    """A successful read must give float32 micrographs with finite first frames of at least 2x2 pixels."""
    assert result.micrographs
    for mg in result.micrographs:
        frame = mg.frame(0)
        assert frame.dtype == np.float32 and frame.ndim == 2 and min(frame.shape) >= 2, (frame.dtype, frame.shape)
        assert np.isfinite(frame).all()
        assert mg.pixel_size_nm is None or (np.isfinite(mg.pixel_size_nm) and mg.pixel_size_nm > 0)


def _one_line(msg: str) -> bool:
    return bool(msg.strip()) and "\n" not in msg.strip() and "Traceback" not in msg


# -------------------------------------------------------------------------------------------------- the fuzz run


def test_fuzz_reader_and_cli_in_process(tmp_path, shared_data):
    """Every variant through ``scan`` (library) and through ``temzoo.cli.main(['inspect', ..., '--json'])``."""
    from temzoo import cli

    cases = _all_variants(shared_data)
    failures: list[str] = []
    timings: list[tuple[float, str]] = []
    outcome = {"read": 0, "ReadError": 0, "cli_exit0": 0, "cli_exit2": 0}
    t_start = time.time()
    for i, (rel, kind, data, suffix) in enumerate(cases):
        path = tmp_path / f"v{i}{suffix}"
        path.write_bytes(data)
        label = f"{rel} [{kind}]"
        t0 = time.time()
        try:
            with time_limit(PER_FILE_LIMIT_S):
                try:
                    result = scan(path)
                except ReadError as err:
                    outcome["ReadError"] += 1
                    if not _one_line(str(err)):
                        failures.append(f"{label}: multi-line error {str(err)!r}")
                else:
                    outcome["read"] += 1
                    _check_result(result)
        except _Timeout as err:
            failures.append(f"{label}: reader {err}")
        except AssertionError as err:
            failures.append(f"{label}: bad micrograph {err}")
        except Exception as err:  # noqa: BLE001 - exactly what the fuzz test hunts for
            failures.append(f"{label}: {type(err).__name__}: {' '.join(str(err).split())[:200]}")
        timings.append((time.time() - t0, label))

        # the same variant through the CLI (same scan(), plus argument handling, printing and exit codes)
        err_buf, out_buf = io.StringIO(), io.StringIO()
        t0 = time.time()
        try:
            with time_limit(PER_FILE_LIMIT_S), contextlib.redirect_stderr(err_buf), \
                    contextlib.redirect_stdout(out_buf):
                code = cli.main(["inspect", str(path), "--json"])
        except _Timeout as err:
            failures.append(f"{label}: CLI {err}")
            continue
        except SystemExit as err:  # argparse only; never expected here
            code = err.code
        timings.append((time.time() - t0, f"CLI {label}"))
        stderr = err_buf.getvalue()
        if code == 0:
            outcome["cli_exit0"] += 1
            json.loads(out_buf.getvalue())
        elif code == 2 and stderr.startswith("error: ") and stderr.count("\n") == 1:
            outcome["cli_exit2"] += 1
            if "unexpected failure" in stderr:
                failures.append(f"{label}: CLI hit an unexpected exception: {stderr.strip()}")
        else:
            failures.append(f"{label}: CLI exit {code}, stderr {stderr!r}")
        path.unlink()

    timings.sort(reverse=True)
    _record("damaged_files", files=len(real_files(shared_data)), variants=len(cases),
            cli_in_process=len(cases), outcome=outcome, failures=failures,
            seconds=round(time.time() - t_start, 1), limit_s=PER_FILE_LIMIT_S,
            slowest=[[round(t, 2), name] for t, name in timings[:8]])
    print(f"\n{len(cases)} variants in {time.time() - t_start:.0f} s; outcome {outcome}; slowest {timings[:3]}")
    assert not failures, f"{len(failures)} of {len(cases)} variants misbehaved:\n" + "\n".join(failures[:30])
    assert outcome["ReadError"] > 100 and outcome["read"] > 20  # the damage really was damage, and not all of it


def test_cli_subprocesses_on_a_sample(tmp_path, shared_data):
    """Ten real ``python -m temzoo inspect`` processes: one ``error:`` line and exit 2, or JSON and exit 0."""
    cases = _all_variants(shared_data)
    picks = [cases[i] for i in np.random.default_rng(8).choice(len(cases), 10, replace=False)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    env.pop("TEMZOO_DEBUG", None)
    procs = []
    for k, (rel, kind, data, suffix) in enumerate(picks):
        path = tmp_path / f"s{k}{suffix}"
        path.write_bytes(data)
        procs.append((f"{rel} [{kind}]", subprocess.Popen(
            [sys.executable, "-m", "temzoo", "inspect", str(path), "--json"], cwd=tmp_path, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        if len(procs) % 2 == 0:  # two at a time on a 2-core machine
            procs[-2][1].wait(timeout=120)
    codes = []
    for label, p in procs:
        out, err = p.communicate(timeout=120)
        codes.append(p.returncode)
        if p.returncode == 0:
            assert err == "" and isinstance(json.loads(out), list), label
        else:
            assert p.returncode == 2, (label, p.returncode, err)
            assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, (label, err)
            assert "unexpected failure" not in err, (label, err)
    _record("cli_subprocesses", n=len(procs), exit_codes=codes)


# ------------------------------------------------------------------------------------------ degenerate arrays


def _tiff(path: Path, arr: np.ndarray) -> Path:
    import tifffile

    tifffile.imwrite(path, arr)
    return path


def _expect(path: Path, match: str | None) -> list:
    """None -> must read (finite float32); a string -> a one-line ReadError containing it."""
    with time_limit(PER_FILE_LIMIT_S):
        if match is None:
            result = scan(path)
            _check_result(result)
            return result.micrographs
        with pytest.raises(ReadError) as info:
            scan(path)
    msg = str(info.value)
    assert _one_line(msg) and match in msg, msg
    return []


def test_degenerate_images(tmp_path):
    from PIL import Image

    from temzoo.preprocess import normalize

    (tmp_path / "zero.tif").write_bytes(b"")
    _expect(tmp_path / "zero.tif", "empty (0 bytes)")
    _expect(_tiff(tmp_path / "empty_axis.tif", np.zeros((0, 10), np.uint8)), "")
    _expect(_tiff(tmp_path / "one.tif", np.ones((1, 1), np.float32)), "line profile")
    Image.fromarray(np.full((1, 1), 7, np.uint8)).save(tmp_path / "one.png")
    _expect(tmp_path / "one.png", "too small")
    Image.fromarray(np.full((1, 300), 7, np.uint8)).save(tmp_path / "line.png")
    _expect(tmp_path / "line.png", "too small")
    _expect(_tiff(tmp_path / "tall.tif", np.zeros((100_000, 10), np.uint8)), "larger than temzoo reads")
    Image.fromarray(np.zeros((100_000, 10), np.uint8)).save(tmp_path / "tall.png")
    _expect(tmp_path / "tall.png", "larger than temzoo reads")

    nan = np.ones((32, 32), np.float32)
    nan[5, 5] = np.nan
    _expect(_tiff(tmp_path / "nan.tif", nan), "NaN or infinite")
    _expect(_tiff(tmp_path / "allnan.tif", np.full((8, 8), np.nan, np.float32)), "64 of 64 pixels")
    inf = np.zeros((32, 32), np.float64)
    inf[0, :3] = [np.inf, -np.inf, np.nan]
    _expect(_tiff(tmp_path / "inf64.tif", inf), "3 of 1024")
    f16 = np.ones((16, 16), np.float16)
    f16[2, 2] = np.float16(70000.0)  # overflows float16 to inf when written
    _expect(_tiff(tmp_path / "f16.tif", f16), "NaN or infinite")

    # integer and float extremes read as finite float32, and normalise to finite values
    for name, arr in {
        "u32": np.array([[0, 2**32 - 1], [2**31, 1]], np.uint32).repeat(8, 0).repeat(8, 1),
        "i64": np.array([[np.iinfo(np.int64).min, np.iinfo(np.int64).max], [0, -1]], np.int64)
        .repeat(8, 0).repeat(8, 1),
        "u64": np.array([[0, np.iinfo(np.uint64).max], [1, 2]], np.uint64).repeat(8, 0).repeat(8, 1),
        "f16max": np.array([[np.finfo(np.float16).max, 0], [1, -np.finfo(np.float16).max]], np.float16)
        .repeat(8, 0).repeat(8, 1),
        "i8": np.array([[-128, 127], [0, 1]], np.int8).repeat(8, 0).repeat(8, 1),
        "const": np.full((16, 16), 5, np.uint16),
    }.items():
        mgs = _expect(_tiff(tmp_path / f"{name}.tif", arr), None)
        x = normalize(mgs[0].frame(0))
        assert np.isfinite(x).all(), name
    # float64 beyond float32's range cannot be represented: refused in one line rather than read as inf
    big = np.full((16, 16), 1e300, np.float64)
    big[0, 0] = 0
    _expect(_tiff(tmp_path / "f64big.tif", big), "")


def test_500_frame_stack_is_read_lazily(tmp_path, monkeypatch):
    """A 500-frame stack: with lazy reading the frames stay on disk until asked for (dask), and one frame reads."""
    import tifffile

    from temzoo.io import readers

    stack = np.random.default_rng(0).integers(0, 4000, (500, 64, 64), dtype=np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "TYX"})  # an in-situ movie
    with time_limit(60):
        mg = scan(path, lazy=True).micrographs[0]
    assert mg.n_frames == 500 and mg.shape == (64, 64)
    assert type(mg.data).__module__.startswith("dask")  # not loaded
    np.testing.assert_array_equal(mg.frame(499), stack[499].astype(np.float32))
    # the automatic choice keeps big stacks lazy: lower the threshold so this small one counts as big
    monkeypatch.setattr(readers, "LAZY_BYTES", 1024)
    mg = scan(path).micrographs[0]
    assert type(mg.data).__module__.startswith("dask") and mg.n_frames == 500
    _record("stack", frames=500, lazy=True)


# ------------------------------------------------------------------------------------------------------ masks


def test_bad_masks_and_coco(tmp_path):
    from PIL import Image

    from temzoo.io.masks import read_coco, read_mask
    from temzoo.train.data import read_set

    img_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    img_dir.mkdir()
    mask_dir.mkdir()
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(img_dir / "a.png")

    # a mask whose size does not match its image
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(mask_dir / "a.png")
    with pytest.raises(DataError, match="masks must have the image's size") as info:
        read_set(img_dir, mask_dir)
    assert _one_line(str(info.value))

    # unexpected values: grey levels, negative numbers, RGB with different channels, 3D arrays, floats
    bad = {
        "grey.png": np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 200,
        "neg.tif": np.full((64, 64), -1, np.int16),
        "frac.tif": np.full((64, 64), 0.5, np.float32),
        "nan.tif": np.full((64, 64), np.nan, np.float32),
        "vol.tif": np.zeros((3, 4, 64, 64), np.uint8),
    }
    import tifffile

    for name, arr in bad.items():
        p = tmp_path / name
        if name.endswith(".png"):
            Image.fromarray(arr.astype(np.uint8)).save(p)
        else:
            tifffile.imwrite(p, arr)
        with pytest.raises(DataError) as info:
            read_mask(p)
        assert _one_line(str(info.value)), name
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.raises(DataError):
        read_mask(tmp_path / "rgb.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(DataError, match="cannot read mask junk.png"):
        read_mask(tmp_path / "junk.png")

    # COCO files with broken polygons, ids and structure: each a one-line DataError naming the problem
    base = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
            "categories": [{"id": 1, "name": "loop"}]}
    broken = {
        "two_vertices": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 5]]}],
        "odd_coords": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 5, 9]]}],
        "nan_coords": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, "NaN", 5, 9, 9]]}],
        "outside": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 500, 5, 9, 900]]}],
        "no_polygon": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": []}],
        "unknown_image": [{"id": 1, "image_id": 7, "category_id": 1, "segmentation": [[1, 1, 5, 5, 9, 1]]}],
        "unknown_category": [{"id": 1, "image_id": 1, "category_id": 9, "segmentation": [[1, 1, 5, 5, 9, 1]]}],
        "string_polygon": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": "1 2 3"}],
        "bad_rle": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"size": [64, 64], "counts": [5000]}}],
    }
    messages = {}
    for name, anns in broken.items():
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps({**base, "annotations": anns}))
        try:
            read_coco(p)
        except DataError as err:
            assert _one_line(str(err)), name
            messages[name] = str(err)
        except Exception as err:  # noqa: BLE001
            pytest.fail(f"COCO {name}: {type(err).__name__}: {err}")
    # (an empty segmentation list is accepted: it adds nothing to the mask)
    assert set(messages) >= {"two_vertices", "nan_coords", "outside", "unknown_image", "unknown_category",
                             "bad_rle"}, messages
    for name, text in {"truncated": json.dumps({**base, "annotations": []})[:40], "not_coco": "[1, 2, 3]",
                       "binary": "\x00\x01\x02"}.items():
        p = tmp_path / f"{name}.json"
        p.write_text(text)
        with pytest.raises(DataError) as info:
            read_coco(p)
        assert _one_line(str(info.value))
    # a broken COCO file through the training-set reader is the same one-line error
    with pytest.raises(TemzooError):
        read_set(img_dir, tmp_path / "two_vertices.json")
    _record("masks", bad_masks=len(bad) + 2, broken_coco=len(broken) + 3, mismatched_size=1, outcome="DataError")
