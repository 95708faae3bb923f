"""Class 2 of issue #12: reading untrusted files never hangs and never exhausts memory (temzoo/io/untrusted.py).

Each case runs the real CLI in a subprocess with a wall-clock limit, or the library with the limits it sets itself.
Every one of these hung, exhausted memory or took minutes before untrusted.py. Checked against main at 4613155 (this
file run in an export of main): the FIFO image was called "empty (0 bytes)", `inspect` on the deflate bomb ran past
60 s, a FIFO model file blocked load_model forever, the time limit did not exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from temzoo.errors import ModelError, ReadError

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "temzoo", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, **(env or {})})


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr and "unexpected failure" not in r.stderr, r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def deflate_bomb(tmp_path_factory) -> Path:
    """100 deflate-compressed 4096x4096 pages of zeros: 7.5 MB on disk, 1.6 GB of uint8 (6.3 GiB as float32)."""
    import tifffile

    p = tmp_path_factory.mktemp("bomb") / "bomb.tif"
    z = np.zeros((4096, 4096), np.uint8)
    with tifffile.TiffWriter(p) as tw:
        for _ in range(100):
            tw.write(z, compression="zlib", compressionargs={"level": 1}, contiguous=False)
    return p


def test_fifo_image_refused_at_once(tmp_path):
    """A FIFO named like a DM4: the old reader blocked forever in open()."""
    fifo = tmp_path / "pipe.dm4"
    os.mkfifo(fifo)
    t = time.monotonic()
    line = one_error_line(cli("inspect", str(fifo), timeout=30))
    assert "FIFO" in line and time.monotonic() - t < 30


def test_fifo_model_file_refused(tmp_path, tiny_checkpoint):
    """A checkpoint folder whose model.safetensors (or temzoo.json) is a FIFO: refused, never opened."""
    from temzoo.zoo import load_model

    for name in ("model.safetensors", "temzoo.json", "config.json"):
        folder = tmp_path / name.replace(".", "_")
        shutil.copytree(tiny_checkpoint, folder)
        (folder / name).unlink()
        os.mkfifo(folder / name)
        with pytest.raises(ModelError, match="FIFO"):
            load_model(str(folder))


def test_deflate_bomb_refused_in_cli_and_upload(deflate_bomb):
    """The CLI (inspect) and the app's upload path refuse a decompression bomb in seconds, from its headers."""
    from temzoo.io import scan_bytes

    t = time.monotonic()
    line = one_error_line(cli("inspect", str(deflate_bomb), timeout=60))
    assert "GiB" in line and time.monotonic() - t < 20, line
    t = time.monotonic()
    with pytest.raises(ReadError, match="decoded pixels"):
        scan_bytes(deflate_bomb.read_bytes(), "bomb.tif")
    assert time.monotonic() - t < 10


def test_compressed_4096x4096x400_stack_predict_refuses(tmp_path, tiny_checkpoint):
    """predict on a 400-frame 4096x4096 deflate stack whose frame 0 can only be decoded with the whole stack:
    the old reader decoded 13 GB and then tried 25 GiB (43 s, 13 GB RSS); now one line in seconds."""
    import tifffile

    p = tmp_path / "stack.tif"
    z = np.zeros((4096, 4096), np.uint8)
    tifffile.imwrite(p, np.broadcast_to(z, (400, 4096, 4096)), bigtiff=True, compression="zlib",
                     compressionargs={"level": 1}, metadata={"axes": "ZYX"})
    t = time.monotonic()
    line = one_error_line(cli("predict", str(p), "--model", str(tiny_checkpoint), "--out", str(tmp_path / "o"),
                              timeout=120))
    assert "stack of 400 frames" in line and time.monotonic() - t < 40, line
    assert not (tmp_path / "o").exists()


def test_parse_time_limit_stops_a_looping_parser():
    """The time limit itself: a parser that never returns is stopped and reported in one line."""
    from temzoo.io import untrusted

    t = time.monotonic()
    with pytest.raises(ReadError, match="longer than 1 s"):
        untrusted.run_limited(_loop_forever, name="loop.dm3", seconds=1)
    assert time.monotonic() - t < 10


def test_parse_memory_limit_stops_an_allocating_parser():
    """The memory limit itself: a parser allocating without bound gets MemoryError in the child, one line here."""
    from temzoo.io import untrusted

    with pytest.raises(ReadError, match="more memory"):
        untrusted.run_limited(_allocate_forever, name="big.dm3", memory=256 * 2**20)


def test_time_limit_applies_to_real_reads(shared_data, monkeypatch):
    """A real DM3 read under a limit it cannot meet is refused the same way (the path a looping DM tag takes)."""
    from temzoo.io import scan

    monkeypatch.setenv("TEMZOO_READ_TIMEOUT_S", "0.001")
    with pytest.raises(ReadError, match="took longer than"):
        scan(shared_data / "dm" / "rosettasciio" / "2D" / "test-1.dm3")
    monkeypatch.delenv("TEMZOO_READ_TIMEOUT_S")
    mg = scan(shared_data / "dm" / "rosettasciio" / "2D" / "test-1.dm3").micrographs[0]
    assert mg.data.dtype == np.float32 and mg.data.flags.writeable


def _loop_forever():
    while True:
        time.sleep(0.01)


def _allocate_forever():
    keep = []
    while True:
        keep.append(np.ones(2**24, np.uint8))
