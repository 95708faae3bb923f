"""Batch prediction (temzoo.batch, ``predict PATH [PATH ...]``): a 50-file campaign of shared and generated files in
mixed formats with one corrupt file; bundles equal single-file predict's; resume after a kill; a real 2-worker
dask LocalCluster gives the same outputs; series tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from temzoo.batch import DONE, BatchConfig, expand_inputs, run_batch
from temzoo.cli import main

REPO = Path(__file__).resolve().parent.parent
SHARED_FILES = [  # small real files: path under shared data, frames
    ("dm/rosettasciio/2D/test_STEM_image.dm3", 1),
    ("dm/particlespy/JEOL HAADF Image.dm4", 1),
    ("dm/rosettasciio/Fei HAADF-UK_location.dm3", 1),
    ("dm/rosettasciio/test_stackbuilder_imagestack.dm3", 3),
    ("labeled/steel-dislocation-loops/images/1.png", 1),
    ("other-formats/ncempy/temp.mrc", 0),
]


@pytest.fixture(scope="module")
def own_scale_checkpoint(tmp_path_factory) -> Path:
    """A tiny random checkpoint without a pixel size: every image is used at its own scale (fast on any file)."""
    import torch

    from temzoo.zoo.checkpoint import ModelSpec, TemzooMeta, save_checkpoint

    torch.manual_seed(0)
    model = ModelSpec().build().eval()
    return save_checkpoint(model, tmp_path_factory.mktemp("ck") / "own", TemzooMeta(pixel_size_nm=None, tile_size=128))


def _blobs(rng, h: int, w: int) -> np.ndarray:
    yy, xx = np.indices((h, w))
    img = rng.normal(0.3, 0.1, (h, w))
    for _ in range(4):
        cy, cx, r = rng.integers(8, h - 8), rng.integers(8, w - 8), rng.integers(3, 8)
        img += ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) * 0.6
    return np.clip(img, 0, 1)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> tuple[Path, list[Path]]:
    """50 files: 6 shared microscope files (copied links), 43 generated PNG/JPEG/TIFF/TIFF-stack files, 1 corrupt."""
    folder = tmp_path_factory.mktemp("campaign")
    shared = REPO.parent / "shared" / "data"
    files: list[Path] = []
    if shared.is_dir():
        for rel, _ in SHARED_FILES:
            dst = folder / Path(rel).name
            os.symlink(shared / rel, dst)
            files.append(dst)
    rng = np.random.default_rng(0)
    i = 0
    while len(files) < 49:
        kind = ("png", "jpg", "tif", "tif16", "stack")[i % 5]
        img = _blobs(rng, int(rng.integers(40, 80)), int(rng.integers(40, 80)))
        p = folder / f"gen_{i:02d}.{'tif' if kind in ('tif16', 'stack') else kind}"
        if kind == "png":
            Image.fromarray((img * 255).astype(np.uint8)).save(p)
        elif kind == "jpg":
            Image.fromarray((img * 255).astype(np.uint8)).save(p, quality=95)
        elif kind == "tif":
            tifffile.imwrite(p, img.astype(np.float32), imagej=True, resolution=(10.0, 10.0),
                             metadata={"unit": "nm"})  # 0.1 nm/px
        elif kind == "tif16":
            tifffile.imwrite(p, (img * 60000).astype(np.uint16))
        else:
            tifffile.imwrite(p, np.stack([_blobs(rng, 48, 48) for _ in range(5)]).astype(np.float32))
        files.append(p)
        i += 1
    bad = folder / "corrupt.dm4"
    bad.write_bytes(b"\x00\x00\x00\x04" + bytes(rng.integers(0, 255, 300, dtype=np.uint8)))
    files.append(bad)
    assert len(files) == 50
    return folder, files


def _strip_timing(x):
    if isinstance(x, dict):
        return {k: _strip_timing(v) for k, v in x.items() if "seconds" not in k}
    if isinstance(x, list):
        return [_strip_timing(v) for v in x]
    return x


def _assert_same_bundle(a: Path, b: Path) -> None:
    """Every file of bundle folder ``a`` equals ``b``'s: bytes, except timing in the summary and HDF5's own
    timestamps in .hspy (compared by content)."""
    from temzoo.io.outputs import MARKER  # bookkeeping of the output folder (single predict), not the bundle

    names = sorted(p.name for p in a.iterdir() if p.name not in (DONE, MARKER))
    assert names == sorted(p.name for p in b.iterdir() if p.name not in (DONE, MARKER)), (a, b)
    for n in names:
        if n.endswith("_summary.json"):
            assert _strip_timing(json.loads((a / n).read_text())) == _strip_timing(json.loads((b / n).read_text()))
        elif n.endswith(".hspy"):
            import hyperspy.api as hs

            sa, sb = hs.load(str(a / n)), hs.load(str(b / n))
            np.testing.assert_array_equal(sa.data, sb.data)
            assert sa.metadata.temzoo.as_dictionary() == sb.metadata.temzoo.as_dictionary()
            assert [ax.scale for ax in sa.axes_manager._axes] == [ax.scale for ax in sb.axes_manager._axes]
        else:
            assert (a / n).read_bytes() == (b / n).read_bytes(), n


def _outputs(out: Path) -> dict[str, bytes]:
    """Every output file's bytes, summary.csv without its timing column."""
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name not in (DONE,) and p.suffix != ".hspy" and not p.name.endswith("_summary.json"):
            files[str(p.relative_to(out))] = p.read_bytes()
    files["summary.csv"] = pd.read_csv(out / "summary.csv").drop(columns=["seconds"]).to_csv().encode()
    return files


@pytest.fixture(scope="module")
def batch_run(campaign, own_scale_checkpoint, tmp_path_factory):
    folder, _ = campaign
    out = tmp_path_factory.mktemp("batch") / "out"
    t0 = time.perf_counter()
    rc = main(["predict", str(folder), "--model", str(own_scale_checkpoint), "--out", str(out), "--threads", "1"])
    return rc, out, time.perf_counter() - t0


def test_fifty_files_bundles_summary_and_particles(campaign, batch_run, own_scale_checkpoint, tmp_path, capsys):
    folder, files = campaign
    rc, out, seconds = batch_run
    assert rc == 0
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert list(summary.columns)[:3] == ["file", "name", "frame"] and "domain_shift_score" in summary.columns
    bad = summary[summary.status == "error"]
    assert list(bad.name) == ["corrupt"], bad  # the one corrupt file, with its one-line error
    assert "corrupt.dm4" in bad.error.iloc[0] and "\n" not in bad.error.iloc[0]
    ok = summary[summary.status == "ok"]
    stacks = [f for f in files if f.name.startswith("gen_") and int(f.stem[4:]) % 5 == 4]
    assert len(ok) >= 49 + 4 * len(stacks)  # every frame of a stack is an image
    assert set(ok[ok.file.str.endswith(stacks[0].name)].name) == {f"{stacks[0].stem}_frame{k:03d}" for k in range(5)}
    # calibrated TIFFs carry their 0.1 nm/px into the row and the particle sizes
    tif = ok[ok.name == "gen_02"].iloc[0]
    assert float(tif.pixel_size_nm) == pytest.approx(0.1) and tif.size_unit == "nm"
    # the aggregated particle table is every bundle's table, in order
    parts = pd.read_csv(out / "particles.csv")
    assert len(parts) == int(ok.objects.astype(int).sum())
    one = pd.read_csv(out / "gen_02" / "gen_02_particles.csv")
    np.testing.assert_allclose(parts[parts.name == "gen_02"].area_px.to_numpy(), one.area_px.to_numpy())
    for png in ("sizes.png", "series.png"):
        assert Image.open(out / png).size[0] > 100
    series = pd.read_csv(out / "series.csv")
    assert len(series) == len(ok) and list(series["index"]) == list(range(len(ok)))
    assert seconds < 120, f"the 50-file batch took {seconds:.0f} s"

    # every good file's bundle equals what single-file predict writes (a stack: any of its frames, via --frame)
    checks = [f for f in files if f.name != "corrupt.dm4"][::6] + [stacks[0]]
    for f in checks:
        single = tmp_path / f"single_{f.stem}"
        frame = ["--frame", "2"] if f in stacks else []
        assert main(["predict", str(f), "--model", str(own_scale_checkpoint), "--out", str(single),
                     "--threads", "1", *frame]) == 0
        name = f"{f.stem}_frame002" if f in stacks else ok[ok.file == str(f.resolve())].name.iloc[0]
        _assert_same_bundle(out / name, single)
    capsys.readouterr()


def test_rerun_skips_everything_done(batch_run, campaign, own_scale_checkpoint):
    folder, _ = campaign
    _, out, _ = batch_run
    before = _outputs(out)
    marks = {p: p.stat().st_mtime_ns for p in out.glob(f"*/{DONE}")}
    res = run_batch([folder], out, BatchConfig(model=str(own_scale_checkpoint), threads=1))
    assert res.skipped == len(marks) and len(res.failed) == 1
    assert {p: p.stat().st_mtime_ns for p in out.glob(f"*/{DONE}")} == marks  # nothing was redone
    assert _outputs(out) == before
    assert all(v <= 1 for v in res.loads.values())  # the model is loaded once per process at most
    # other settings into the same folder: refused with one line, nothing touched
    from temzoo.errors import TemzooError

    with pytest.raises(TemzooError, match="other settings"):
        run_batch([folder], out, BatchConfig(model=str(own_scale_checkpoint), tta=True))


def test_two_dask_workers_give_identical_outputs(batch_run, campaign, own_scale_checkpoint, tmp_path):
    folder, _ = campaign
    _, out, _ = batch_run
    out2 = tmp_path / "dask"
    t0 = time.perf_counter()
    res = run_batch([folder], out2, BatchConfig(model=str(own_scale_checkpoint), threads=1), workers=2)
    took = time.perf_counter() - t0
    assert len(res.loads) == 2 and set(res.loads.values()) == {1}  # 2 worker processes, one model load each
    assert _outputs(out2) == _outputs(out)
    assert took < 90, f"2-worker batch took {took:.0f} s"



def test_scheduler_joins_an_existing_cluster(batch_run, campaign, own_scale_checkpoint, tmp_path, capsys):
    """``--scheduler ADDRESS`` runs the files on a cluster someone else started (here a real in-process
    LocalCluster, one worker thread); the bundles equal the single-process batch's."""
    from distributed import LocalCluster

    _, files = campaign
    _, out, _ = batch_run
    picked = [f for f in files if f.name.startswith("gen_")][:3]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                      silence_logs=50) as cluster:
        rc = main(["predict", *map(str, picked), "--model", str(own_scale_checkpoint), "--out",
                   str(tmp_path / "joined"), "--threads", "1", "--scheduler", cluster.scheduler_address])
    assert rc == 0, capsys.readouterr().err
    summary = pd.read_csv(tmp_path / "joined" / "summary.csv", keep_default_na=False)
    assert list(summary.status) == ["ok"] * len(summary) and len(summary) >= 3
    for name in summary.name:
        _assert_same_bundle(tmp_path / "joined" / name, out / name)


def test_killed_run_resumes_with_the_rest_only(campaign, own_scale_checkpoint, tmp_path):
    _, files = campaign
    inputs = [str(f) for f in files[6:26]]  # 20 generated files (4 stacks)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "temzoo", "predict", *inputs, "--model", str(own_scale_checkpoint), "--out",
           str(out), "--threads", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob(f"*/{DONE}"))) < 8:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done = {p.parent.name: p.stat().st_mtime_ns for p in out.glob(f"*/{DONE}")}
    assert 8 <= len(done) and not (out / "summary.csv").exists()  # killed halfway
    res = run_batch(inputs, out, BatchConfig(model=str(own_scale_checkpoint), threads=1))
    assert res.skipped == len(done) and not res.failed
    assert {n: t for n, t in ((p.parent.name, p.stat().st_mtime_ns) for p in out.glob(f"*/{DONE}"))
            if n in done} == done  # the finished ones were not redone
    assert len(res.rows) > len(done) and not list(out.glob(".*.tmp-*"))
    # and the result equals a run that was never killed
    clean = run_batch(inputs, tmp_path / "clean", BatchConfig(model=str(own_scale_checkpoint), threads=1))
    assert _outputs(tmp_path / "clean") == _outputs(out) and clean.skipped == 0


def test_inputs_globs_missing_and_name_clashes(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / d / "x.png")
    (tmp_path / "a" / "x.tif").write_bytes(b"")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    tasks = expand_inputs([tmp_path / "a", str(tmp_path / "b" / "*.png"), tmp_path / "nope.dm4",
                           str(tmp_path / "*.emd"), tmp_path / "a" / "x.png"])
    keys = [(Path(t.path).relative_to(tmp_path).as_posix() if not t.error else None, t.key) for t in tasks]
    assert keys[:3] == [("a/x.png", "x_png"), ("a/x.tif", "x_tif"), ("b/x.png", "x_png_2")]
    assert [t.error for t in tasks[3:]] == [f"no such file or folder: {tmp_path / 'nope.dm4'}",
                                            f"no file matches {tmp_path / '*.emd'}"]
    assert len(tasks) == 5  # a/x.png given twice counts once


def test_batch_refuses_a_folder_it_did_not_make(tmp_path, own_scale_checkpoint, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("precious")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "a.png")
    rc = main(["predict", str(tmp_path / "a.png"), "--all-frames", "--model", str(own_scale_checkpoint), "--out",
               str(tmp_path / "mine")])
    assert rc == 2 and "temzoo did not make it" in capsys.readouterr().err
    assert (tmp_path / "mine" / "thesis.docx").read_text() == "precious"



def _hwm_mb() -> float:
    """This process's peak RSS since the last reset (VmHWM), in MiB."""
    import re

    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def _peaks(fn) -> tuple[float, float]:
    """(peak traced NumPy/Python memory, peak RSS) while ``fn`` runs, in MiB; the RSS peak is reset first (Linux)."""
    import tracemalloc

    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    tracemalloc.start()
    try:
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / 2**20, _hwm_mb()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the RSS peak")
def test_long_stack_is_read_frame_by_frame_with_bounded_memory(own_scale_checkpoint, tmp_path):
    """A stack's frames are read lazily, one at a time: 24 frames of a uint16 stack (as detectors write them) peak no
    higher than 4 (an eager read, or a cast of the whole stack to hand out one frame, would hold the 20 extra). Identical smooth
    frames make every frame's own peak the same, so the bound is tight (NumPy allocations, traced); the RSS bound
    is loose. bench_batch.py --stack measures RSS on big stacks (docs/BENCHMARKS.md)."""
    from temzoo.batch import Task, run_task

    side = 256
    frame_mb = 4 * side * side / 2**20  # one float32 frame
    yy, xx = np.ogrid[:side, :side]
    img = (20000 + 4000 * xx / side + 30000 * ((yy - 90) ** 2 + (xx - 120) ** 2 < 30 ** 2)).astype(np.uint16)
    cfg = BatchConfig(model=str(own_scale_checkpoint), threads=1)
    peaks = {}
    for n in (1, 4, 24):  # 1: warm-up (model, imports, allocator pools), not compared
        stack = tmp_path / f"stack{n}.tif"
        tifffile.imwrite(stack, (img for _ in range(n)), shape=(n, side, side), dtype=np.uint16,
                         photometric="minisblack")  # frames, not colour planes
        out = tmp_path / f"out{n}"
        out.mkdir()
        res: dict = {}
        peaks[n] = _peaks(lambda: res.update(run_task(Task(str(stack), f"stack{n}"), str(out), cfg)))
        assert [r["status"] for r in res["rows"]] == ["ok"] * n, res["rows"]
    (t4, r4), (t24, r24) = peaks[4], peaks[24]
    sys.stderr.write(f"traced peak {t4:.2f} -> {t24:.2f} MiB, RSS peak {r4:.0f} -> {r24:.0f} MiB "
                     f"(the 20 extra frames as float32: {20 * frame_mb:.2f} MiB)\n")
    assert t24 - t4 < frame_mb, peaks
    assert r24 - r4 < 20 * frame_mb, peaks  # RSS is noisier (allocator, page cache): a looser bound
