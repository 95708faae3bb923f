"""Batch prediction: many files, folders, globs or stacks -> one export bundle per image, a summary table, the
particles of all images in one table, a size distribution and a series (frame by frame) analysis.

Layout of the output folder ``DIR``::

    DIR/.temzoo-batch.json     what made the folder (model, options): a re-run must match it to resume
    DIR/<name>/                one export bundle per image (temzoo.export; ``<name>`` as single-file predict names it)
    DIR/<name>/.done.json      written last, once the bundle is complete: its summary row (resume skips the image)
    DIR/summary.csv            one row per image, failures included with their one-line error
    DIR/particles.csv          every image's particles, with file/name/frame columns in front
    DIR/sizes.png              size distribution of all particles (nm when every image is calibrated)
    DIR/series.csv, series.png objects, coverage and mean size against the image's place in the series

Work is one task per input file (a stack's frames are done in its task, read one frame at a time from HyperSpy's
lazy Dask array, so memory stays bounded). Tasks run in this process or on ``dask.distributed`` workers
(``workers=N`` starts a LocalCluster, ``scheduler=ADDRESS`` joins one); each process loads the model once
(:func:`cached_model`). Everything but the ``seconds`` column is the same whichever way it ran.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from temzoo.errors import TemzooError

MARKER = ".temzoo-batch.json"
DONE = ".done.json"
SUMMARY_COLUMNS = ["file", "name", "frame", "status", "error", "pixel_size_nm", "objects", "coverage",
                   "mean_confidence", "mean_diameter", "size_unit", "domain_shift_score", "domain_warnings",
                   "seconds"]
TIMING_COLUMNS = ("seconds",)  # the only columns that differ between two runs of the same batch
Progress = Callable[[int, int, str], None]  # (files finished, files in all, what just finished)


@dataclass
class BatchConfig:
    """What a batch runs with; ``key()`` (the output-relevant part) must match for a re-run to resume a folder."""

    model: str
    tta: bool = False
    mc_dropout: int = 0
    threshold: float = 0.5
    device: str = "auto"
    pixel_size_nm: float | None = None
    image_index: int | None = None
    # torch threads per task (None: torch's default). Not in key(): it changes no result beyond the last float bit,
    # but float maps are byte-identical between two runs only at the same thread count (summation order).
    threads: int | None = None

    def key(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "threads"}


@dataclass
class Task:
    """One input file and the name its bundles are written under."""

    path: str  # absolute
    key: str  # bundle name stem (the file's stem; disambiguated when two inputs share one)
    error: str | None = None  # set when the input itself is unusable (a missing path, a glob matching nothing)


@dataclass
class BatchResult:
    out: Path
    rows: list[dict]
    skipped: int  # images already done by an earlier run
    loads: dict[str, int] = field(default_factory=dict)  # model loads per worker process ("host:pid" -> count)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != "ok"]


# ------------------------------------------------------------------------------------------------------- inputs
def _natural(s: str) -> list:
    """Sort key that puts frame_2 before frame_10 (an ordered folder of frames is a series)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def expand_inputs(paths: Iterable[str | os.PathLike], exclude: Path | None = None) -> list[Task]:
    """Files, folders (their supported files, natural order) and globs -> tasks, in the order given.

    A path that does not exist or a glob that matches nothing becomes a task with an ``error`` (reported in the
    summary), so one typo does not stop a campaign. ``exclude``: a folder never read (the output folder).
    """
    from temzoo.export import bundle_name
    from temzoo.io.readers import SUPPORTED_EXTENSIONS
    from temzoo.labelled import image_files

    exclude = exclude.resolve() if exclude is not None else None
    found: list[tuple[str, str | None]] = []  # (path, error)
    for raw in paths:
        s = str(raw)
        p = Path(s)
        if p.is_dir():
            files = image_files(p)
            if not files:
                found.append((s, f"folder {s} holds no microscope files ({', '.join(SUPPORTED_EXTENSIONS)})"))
            found += [(str(f), None) for f in sorted(files, key=lambda f: _natural(f.name))]
        elif p.exists():
            found.append((s, None))
        elif glob.has_magic(s):
            hits = sorted((h for h in glob.glob(s, recursive=True) if Path(h).is_file()), key=_natural)
            found += [(h, None) for h in hits] or [(s, f"no file matches {s}")]
        else:
            found.append((s, f"no such file or folder: {s}"))
    tasks: list[Task] = []
    seen: set[str] = set()
    for s, err in found:
        a = str(Path(s).resolve())
        if a in seen or (exclude is not None and Path(a).is_relative_to(exclude)):
            continue
        seen.add(a)
        tasks.append(Task(a, bundle_name(a), err))
    # Two inputs with one stem (a/x.png, b/x.png, x.tif): all of them get the extension, then a counter.
    by_key: dict[str, list[Task]] = {}
    for t in tasks:
        by_key.setdefault(t.key, []).append(t)
    used = {k for k, ts in by_key.items() if len(ts) == 1}
    for k, ts in by_key.items():
        if len(ts) > 1:
            for t in ts:
                ext = Path(t.path).suffix.lower().lstrip(".")
                cand, n = f"{k}_{ext}" if ext else k, 1
                while cand in used:
                    n += 1
                    cand = f"{k}_{ext}_{n}"
                t.key = cand
                used.add(cand)
    return tasks


# ------------------------------------------------------------------------------------------------ output folder
def prepare_out(out: str | os.PathLike, config: BatchConfig, inputs: Iterable = ()) -> Path:
    """Create ``out`` or reopen it for resuming. Refuses what temzoo.io.outputs refuses (a non-empty folder that no
    batch made, an input folder, the zoo) and a batch made with another model or options (its bundles would mix two
    runs)."""
    from temzoo.io.outputs import check_output, write_marker

    out = check_output(out, "batch", resume=True, inputs=inputs).final
    marker = out / MARKER
    if marker.is_file():
        try:
            before = json.loads(marker.read_text())
        except (OSError, ValueError):
            raise TemzooError(f"{marker} is unreadable; give a new --out folder") from None
        if before.get("config") != json.loads(json.dumps(config.key())):
            raise TemzooError(f"{out} holds a batch run with other settings ({_diff(before.get('config'), config)});"
                              " give a new --out folder or the same settings to resume it")
        return out
    out.mkdir(parents=True, exist_ok=True)
    from temzoo.io.writers import write_json

    write_marker(out, "batch")
    write_json(marker, {"kind": "temzoo-batch", "config": config.key()})
    return out


def _diff(before: dict | None, config: BatchConfig) -> str:
    now = config.key()
    diffs = [f"{k} {before.get(k)!r} vs {v!r}" for k, v in now.items() if (before or {}).get(k) != v]
    return ", ".join(diffs) or "unknown"


# ---------------------------------------------------------------------------------------------------- one task
_MODELS: dict[tuple, Any] = {}
_LOADS: dict[tuple, int] = {}


def cached_model(ref: str, device: str = "auto"):
    """The checkpoint ``ref``, loaded once per process (every task on a worker reuses it; it is never modified)."""
    key = (ref, device)
    if key not in _MODELS:
        from temzoo.zoo import load_model

        _MODELS[key] = load_model(ref)
        _LOADS[key] = _LOADS.get(key, 0) + 1
    return _MODELS[key]


def _error_row(task: Task, frame: int | str, err: BaseException | str) -> dict:
    msg = err if isinstance(err, str) else (str(err) if isinstance(err, TemzooError)
                                             else f"{type(err).__name__}: {err}")
    row = dict.fromkeys(SUMMARY_COLUMNS, "")
    row.update(file=task.path, name=task.key, frame=frame, status="error", error=" ".join(str(msg).split())[:300])
    return row


def _done_row(folder: Path) -> dict | None:
    with contextlib.suppress(OSError, ValueError):
        row = json.loads((folder / DONE).read_text())
        if isinstance(row, dict) and row.get("status") == "ok":
            return row
    return None


def run_task(task: Task, out: str, config: BatchConfig) -> dict:
    """Predict every frame of one input into its bundles under ``out``; frames already done are skipped.

    Returns ``{"rows": [...], "skipped": n, "worker": "host:pid", "loads": n}``. Never raises for a bad input: the
    row says what went wrong, in one line.
    """
    import socket

    outp = Path(out)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    with task_env(config.threads):
        return _run_task(task, outp, config, {"rows": [], "skipped": 0, "worker": worker})


@contextlib.contextmanager
def task_env(threads: int | None):
    """Torch threads for this task, and lazy (Dask) frames computed right here: on a dask worker the default
    scheduler would be the cluster itself, which cannot ship a file-backed array."""
    import dask
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with dask.config.set(scheduler="synchronous"):
            yield
    finally:
        torch.set_num_threads(before)


def _run_task(task: Task, outp: Path, config: BatchConfig, res: dict) -> dict:
    if task.error:
        res["rows"].append(_error_row(task, "", task.error))
        return res
    # A single image was finished by an earlier run: skip without even opening the file.
    single = _done_row(outp / task.key)
    if single is not None and single.get("n_frames", 1) == 1:
        res["rows"].append(single)
        res["skipped"] = 1
        return _with_loads(res, config)
    try:
        from temzoo.io.readers import read_micrograph

        mg = read_micrograph(task.path, config.image_index, lazy=True).with_pixel_size(config.pixel_size_nm)
    except Exception as err:  # noqa: BLE001 - any failure to read is this file's one-line error, not the batch's
        res["rows"].append(_error_row(task, 0, err))
        return _with_loads(res, config)
    for frame in range(mg.n_frames):
        name = f"{task.key}_frame{frame:03d}" if mg.n_frames > 1 else task.key
        done = _done_row(outp / name)
        if done is not None:
            res["rows"].append(done)
            res["skipped"] += 1
            continue
        try:
            res["rows"].append(_predict_frame(task, mg, frame, name, outp, config))
        except Exception as err:  # noqa: BLE001 - one bad frame is reported, the others still run
            res["rows"].append(_error_row(task, frame, err))
        if mg.n_frames > 1:
            # A frame's bundle leaves reference cycles holding its arrays (HyperSpy signals); free them now, so a
            # long stack's memory does not depend on when the collector happens to run.
            gc.collect()
    return _with_loads(res, config)


def _with_loads(res: dict, config: BatchConfig) -> dict:
    res["loads"] = _LOADS.get((config.model, config.device), 0)
    return res


def predict_one(checkpoint, micrograph, frame: int, options, *, name: str | None = None,
                explain_method: str | None = None, explain_options=None):
    """Predict one frame and build its export bundle, domain check included: what single-file ``predict`` and
    every batch image do, so their bundles are the same. Returns ``(prediction, bundle, domain_check)``."""
    from temzoo import metrics as tzm
    from temzoo.export import build_bundle
    from temzoo.predict import predict

    pred = predict(checkpoint, micrograph, options, frame=frame)
    domain = tzm.domain_shift(checkpoint, micrograph, frame)
    explanation = None
    if explain_method:
        from temzoo.explain import explain

        explanation = explain(checkpoint, micrograph, explain_method, frame=frame, prediction=pred,
                              options=explain_options)
    bundle = build_bundle(pred, micrograph, frame, name=name, explanation=explanation, domain=domain)
    return pred, bundle, domain


def _predict_frame(task: Task, mg, frame: int, name: str, out: Path, config: BatchConfig) -> dict:
    from temzoo.predict import PredictOptions

    t0 = time.perf_counter()
    ck = cached_model(config.model, config.device)
    opts = PredictOptions(tta=config.tta, mc_dropout=config.mc_dropout, threshold=config.threshold,
                          device=config.device)
    pred, bundle, domain = predict_one(ck, mg, frame, opts, name=name)
    m = bundle.summary["metrics"]
    score = bundle.summary["domain"]["score"]
    row = {
        "file": task.path, "name": name, "frame": frame, "status": "ok", "error": "",
        "pixel_size_nm": pred.pixel_size_nm if pred.pixel_size_nm is not None else "",
        "objects": m["n_objects"], "coverage": round(m["foreground_fraction"], 6),
        "mean_confidence": round(m["mean_confidence"], 6),
        "mean_diameter": round(m["mean_diameter"], 6) if m["mean_diameter"] is not None else "",
        "size_unit": m["size_unit"], "domain_shift_score": "" if score is None else round(float(score), 6),
        "domain_warnings": len(domain.warnings), "seconds": round(time.perf_counter() - t0, 3),
        "n_frames": mg.n_frames,
    }
    _write_bundle_folder(out, name, bundle, row)
    return row


def _write_bundle_folder(out: Path, name: str, bundle, row: dict) -> None:
    """Bundle into a temporary sibling, the done marker last, then one rename: a killed run leaves either a whole
    bundle or a temporary folder (removed by the next run), never a half bundle under the real name."""
    from temzoo.io.writers import write_json

    tmp = out / f".{name}.tmp-{os.getpid()}"
    final = out / name
    shutil.rmtree(tmp, ignore_errors=True)
    bundle.write(tmp)
    write_json(tmp / DONE, row)
    if final.exists():  # an incomplete bundle of ours (no done marker): this run replaces it
        shutil.rmtree(final)
    os.replace(tmp, final)


# ------------------------------------------------------------------------------------------------------- batch
def run_batch(paths: Iterable[str | os.PathLike], out: str | os.PathLike, config: BatchConfig, *,
              workers: int = 0, scheduler: str | None = None, progress: Progress | None = None,
              cancel: Callable[[], bool] | None = None) -> BatchResult:
    """Run every input through ``config.model`` into ``out`` (see the module doc); resumable.

    ``workers=0`` and no ``scheduler``: in this process. ``cancel`` is polled between files; a cancelled run keeps
    what it finished (a re-run resumes it) and raises nothing: the summary lists what was done.
    """
    paths = [str(p) for p in paths]
    model_dir = [config.model] if Path(config.model).is_dir() else []
    outp = prepare_out(out, config, [*paths, *model_dir])
    tasks = expand_inputs(paths, exclude=outp)
    if not tasks:
        raise TemzooError("no inputs given")
    for stale in outp.glob(".*.tmp-*"):  # temporary bundles of a killed run
        shutil.rmtree(stale, ignore_errors=True)
    if workers or scheduler:
        results = _run_dask(tasks, outp, config, workers, scheduler, progress, cancel)
    else:
        cached_model(config.model, config.device)  # load once up front: a bad --model fails before any file
        results = []
        for i, t in enumerate(tasks):
            if cancel is not None and cancel():
                break
            results.append(run_task(t, str(outp), config))
            if progress is not None:
                progress(i + 1, len(tasks), Path(t.path).name)
    order = {t.path: i for i, t in enumerate(tasks)}
    results.sort(key=lambda r: order.get(r["rows"][0]["file"], 0) if r["rows"] else 0)
    rows = [row for r in results for row in r["rows"]]
    loads: dict[str, int] = {}
    for r in results:
        loads[r["worker"]] = max(loads.get(r["worker"], 0), r.get("loads", 0))
    result = BatchResult(outp, rows, sum(r["skipped"] for r in results), loads)
    write_tables(result)
    return result


def _run_dask(tasks: list[Task], out: Path, config: BatchConfig, workers: int, scheduler: str | None,
              progress: Progress | None, cancel: Callable[[], bool] | None) -> list[dict]:
    from distributed import Client, LocalCluster, as_completed

    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler, timeout="20s"))
        else:
            # Loopback only, no dashboard: nothing listens beyond this machine. One thread per worker process:
            # torch parallelises inside a task; tasks parallelise across processes.
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       host="127.0.0.1", dashboard_address=None,
                                                       silence_logs=50))
            client = stack.enter_context(Client(cluster))
        if config.threads is None and not scheduler:  # share this machine's cores between the workers
            from dataclasses import replace

            config = replace(config, threads=max(1, (os.cpu_count() or 1) // workers))
        futures = client.map(run_task, tasks, out=str(out), config=config, pure=False)
        results = []
        for i, fut in enumerate(as_completed(futures)):
            results.append(fut.result())
            if progress is not None:
                progress(i + 1, len(tasks), Path(results[-1]["rows"][0]["file"]).name if results[-1]["rows"] else "")
            if cancel is not None and cancel():
                client.cancel(futures)
                break
    return results


# --------------------------------------------------------------------------------------------- background jobs
def job_config(inputs: Iterable[str | os.PathLike], config: BatchConfig, out: str | os.PathLike | None = None,
               workers: int = 0) -> dict:
    """What a batch job's ``config.json`` holds; ``out`` None: ``<job folder>/out``."""
    return {"inputs": [str(p) for p in inputs], "out": None if out is None else str(out),
            "config": asdict(config), "workers": int(workers), "device": config.device}


def submit_batch(inputs: Iterable[str | os.PathLike], config: BatchConfig, root: str | os.PathLike | None = None,
                 name: str | None = None, out: str | os.PathLike | None = None, workers: int = 0):
    """Start a batch as a background job (temzoo.train.jobs, kind "batch"): progress, cancel and resume as for
    training; returns the job handle. Its result is the output folder."""
    from temzoo.train import jobs

    return jobs.submit(job_config(inputs, config, out, workers), root=root, name=name, kind="batch",
                       target="temzoo.batch:run_job")


def run_job(cfg: dict, job_dir: str | os.PathLike, should_stop: Callable[[], bool] | None = None,
            log: Callable[[str], None] | None = None) -> Path:
    """The batch job's body (called by the job worker): run the batch, one progress line per file in
    ``metrics.jsonl``; a resumed job skips the images already done."""
    from temzoo.train.jobs import METRICS_FILE

    job_dir = Path(job_dir)
    out = Path(cfg.get("out") or job_dir / "out")
    config = BatchConfig(**cfg["config"])

    def progress(done: int, total: int, name: str) -> None:
        with open(job_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps({"files_done": done, "files": total, "file": name, "time": time.time()}) + "\n")
        if log is not None:
            log(f"{done}/{total} {name}")

    res = run_batch(cfg["inputs"], out, config, workers=int(cfg.get("workers") or 0), progress=progress,
                    cancel=should_stop)
    if log is not None:
        log(f"{len(res.rows) - len(res.failed)} image(s) done ({res.skipped} earlier), {len(res.failed)} failed")
    return out


def job_progress(job) -> tuple[int, int]:
    """(files done, files in all) of a batch job so far, from its progress lines."""
    from temzoo.train import jobs

    recs = [r for r in jobs.read_metrics(job) if "files_done" in r]
    return (int(recs[-1]["files_done"]), int(recs[-1]["files"])) if recs else (0, 0)


@dataclass
class BatchOutputs:
    """A batch output folder's tables, read back (for the app and notebooks)."""

    summary: Any  # pandas DataFrames
    particles: Any
    series: Any
    calibrated: bool


def read_outputs(out: str | os.PathLike) -> BatchOutputs | None:
    """The tables of ``out``, or None when the batch has not written them yet."""
    import pandas as pd

    out = Path(out)
    try:
        summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
        particles = pd.read_csv(out / "particles.csv")
        series = pd.read_csv(out / "series.csv")
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None
    ok = summary[summary["status"] == "ok"]
    calibrated = bool(len(ok)) and bool((ok["pixel_size_nm"].astype(str) != "").all())
    return BatchOutputs(summary, particles, series, calibrated)


def zip_outputs(out: str | os.PathLike) -> bytes:
    """Everything a batch wrote (bundles, tables, plots) as one zip, paths relative to ``out``; the bookkeeping
    files (done markers, the folder marker, temporaries) are left out."""
    import io
    import zipfile

    out = Path(out)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(out.rglob("*")):
            rel = p.relative_to(out)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                z.write(p, f"{out.name}/{rel.as_posix()}")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------ tables
def write_tables(result: BatchResult) -> None:
    """summary.csv, particles.csv, sizes.png, series.csv and series.png from the rows (and the bundles' tables)."""
    import pandas as pd

    from temzoo import figures
    from temzoo.io.writers import _atomic_write

    out = result.out
    summary = pd.DataFrame(result.rows, columns=SUMMARY_COLUMNS)
    _atomic_write(out / "summary.csv", summary.to_csv(index=False).encode())
    parts = []
    for row in result.rows:
        if row["status"] != "ok":
            continue
        t = pd.read_csv(out / row["name"] / f"{row['name']}_particles.csv")
        t.insert(0, "frame", row["frame"])
        t.insert(0, "name", row["name"])
        t.insert(0, "file", row["file"])
        parts.append(t)
    particles = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["file", "name", "frame"])
    _atomic_write(out / "particles.csv", particles.to_csv(index=False, float_format="%.6g").encode())
    ok = [r for r in result.rows if r["status"] == "ok"]
    calibrated = bool(ok) and all(r["pixel_size_nm"] != "" for r in ok)
    _atomic_write(out / "sizes.png", figures.size_histogram_png(*particle_diameters(particles, calibrated)))
    series = series_table(result.rows)
    _atomic_write(out / "series.csv", series.to_csv(index=False).encode())
    _atomic_write(out / "series.png", figures.series_png(series))


def series_table(rows: list[dict]):
    """Objects, coverage and mean size per image, in series order (input order, then frame): Horwath et al.'s
    coarsening analysis for an in-situ stack or an ordered folder of frames."""
    import pandas as pd

    ok = [r for r in rows if r["status"] == "ok"]
    return pd.DataFrame({"index": range(len(ok)), "file": [r["file"] for r in ok], "name": [r["name"] for r in ok],
                         "frame": [r["frame"] for r in ok], "objects": [r["objects"] for r in ok],
                         "coverage": [r["coverage"] for r in ok],
                         "mean_diameter": [r["mean_diameter"] for r in ok],
                         "size_unit": [r["size_unit"] for r in ok]})


def particle_diameters(particles, calibrated: bool):
    """Equivalent diameters of a particle table and their unit: nm when calibrated, else area-equivalent px."""
    import numpy as np

    if calibrated and "equivalent_diameter_nm" in particles:
        d, unit = np.asarray(particles["equivalent_diameter_nm"], float), "nm"
    else:
        d, unit = np.sqrt(4 * np.asarray(particles.get("area_px", []), float) / np.pi), "px (uncalibrated)"
    return d[np.isfinite(d)], unit


__all__ = ["BatchConfig", "BatchOutputs", "BatchResult", "job_config", "job_progress", "particle_diameters",
           "read_outputs", "run_job", "submit_batch", "zip_outputs", "SUMMARY_COLUMNS", "TIMING_COLUMNS", "Task",
           "cached_model", "expand_inputs", "predict_one", "prepare_out", "run_batch", "run_task", "series_table",
           "write_tables"]
