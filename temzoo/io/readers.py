"""Read microscope files into calibrated :class:`~temzoo.types.Micrograph` objects.

HyperSpy/RosettaSciIO read DM3, DM4, EMD (Velox and Berkeley), SER/EMI, MRC and TIFF; PIL reads PNG and JPEG. Every
entry of a file is classified: real-space images (2D, or a stack of 2D frames) become Micrographs; plots, spectra,
spectrum images, complex FFTs, non-square pixels, NaN/inf data and the like are *skipped* with a reason. A file with
nothing usable raises :class:`~temzoo.errors.ReadError` with a one-line message. Rules are in docs/READING.md.

``Micrograph.index`` is the entry's position in the file (as HyperSpy lists it), so it stays stable whatever is
skipped; ``read_micrograph(path, index=K)`` and ``inspect`` use the same numbering.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import math
import os
import re
import tempfile
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from temzoo.errors import ReadError
from temzoo.io import untrusted
from temzoo.io.metadata import acquisition_metadata
from temzoo.io.units import format_nm, to_nm, to_per_nm, unit_kind
from temzoo.types import Micrograph

# extension -> format family (the reader used and the name shown in messages)
FORMATS: dict[str, str] = {
    ".dm3": "DigitalMicrograph",
    ".dm4": "DigitalMicrograph",
    ".emd": "EMD",
    ".ser": "TIA (SER)",
    ".emi": "TIA (EMI)",
    ".mrc": "MRC",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(FORMATS)
PIL_EXTENSIONS = {".png", ".jpg", ".jpeg"}

MAX_SIDE = 65_536  # pixels along one side of a frame
MAX_FRAME_PIXELS = 2**27  # 134 M pixels (K3 super-resolution is 94 M): beyond this a header is likely corrupt
LAZY_BYTES = 512 * 2**20  # stacks larger than this (as float32) stay lazy (dask) unless lazy=False
EAGER_RETRY_BYTES = 2**30  # a file a reader cannot open lazily is retried eagerly only up to this size
SQUARE_TOLERANCE = 0.01  # relative x/y pixel-size difference still treated as square

_MAGIC: list[tuple[bytes, int, str]] = [  # (bytes, offset, format family)
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"II+\x00", 0, "TIFF"),
    (b"MM\x00+", 0, "TIFF"),
    (b"\x89HDF\r\n\x1a\n", 0, "EMD"),
    (b"\x89HDF\r\n\x1a\n", 512, "EMD"),
    (b"II\x97\x01", 0, "TIA (SER)"),
    (b"\x00\x00\x00\x03", 0, "DigitalMicrograph"),
    (b"\x00\x00\x00\x04", 0, "DigitalMicrograph"),
]
# Families whose files always start with a signature: anything else with their extension is not that format.
_SIGNED = {"PNG", "JPEG", "TIFF", "EMD", "TIA (SER)", "DigitalMicrograph"}
_EXT_FOR = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "EMD": ".emd", "TIA (SER)": ".ser",
            "DigitalMicrograph": ".dm3/.dm4"}
_SPECTRAL_UNITS = {"ev", "kev", "mev"}


@dataclass
class Skipped:
    """A file entry that is not a usable real-space image, and why."""

    index: int
    title: str
    reason: str

    def line(self) -> str:
        return f"entry {self.index} '{self.title}': {self.reason}"


@dataclass
class ReadResult:
    """Everything found in one file: the micrographs and the entries skipped (with reasons)."""

    micrographs: list[Micrograph]
    skipped: list[Skipped] = field(default_factory=list)
    source: str = ""
    format: str = ""


# ----------------------------------------------------------------------------------------------------------------
# public API


def read(path: str | os.PathLike, *, lazy: bool | None = None, include_reciprocal: bool = False) -> list[Micrograph]:
    """Every real-space image in ``path`` (reciprocal-space ones too, flagged, if ``include_reciprocal``).

    ``lazy``: None reads stacks over 512 MiB lazily (dask) and everything else into memory; True/False force it.
    Raises :class:`ReadError` when the file holds nothing usable.
    """
    return scan(path, lazy=lazy, include_reciprocal=include_reciprocal).micrographs


def read_micrograph(
    path: str | os.PathLike, index: int | None = None, *, lazy: bool | None = None, allow_reciprocal: bool = False
) -> Micrograph:
    """The first real-space image in ``path``, or the file entry ``index`` (numbering as ``inspect`` shows it)."""
    return pick(scan(path, lazy=lazy, include_reciprocal=allow_reciprocal), index)


def read_bytes(
    data: bytes, filename: str, *, lazy: bool | None = False, include_reciprocal: bool = False
) -> list[Micrograph]:
    """Read an uploaded file given as bytes and its original name (see :func:`scan_bytes`)."""
    return scan_bytes(data, filename, lazy=lazy, include_reciprocal=include_reciprocal).micrographs


def scan_bytes(
    data: bytes, filename: str, *, lazy: bool | None = False, include_reciprocal: bool = False
) -> ReadResult:
    """Like :func:`scan` for an upload: the bytes go to a private temporary folder under a sanitised name.

    The upload's name is never used as a path: only its sanitised base name (which keeps the extension that picks
    the reader) is joined to the temporary folder. Data is read into memory (``lazy=False``) because the temporary
    file is deleted before returning.
    """
    name = safe_filename(filename)
    if not data:
        raise ReadError(f"the upload '{name}' is empty (0 bytes); choose the file again")
    with tempfile.TemporaryDirectory(prefix="temzoo-upload-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        result = scan(path, lazy=False if lazy is None else lazy, include_reciprocal=include_reciprocal)
    result.source = name
    for mg in result.micrographs:
        mg.source = name
    return result


def scan(path: str | os.PathLike, *, lazy: bool | None = None, include_reciprocal: bool = False) -> ReadResult:
    """Read every entry of ``path``: usable images as Micrographs, the rest listed in ``skipped`` with reasons."""
    p = Path(path)
    fmt = _check_file(p)
    result = _scan_limited(p, fmt, lazy)
    if not include_reciprocal:
        keep = []
        for mg in result.micrographs:
            if mg.reciprocal:
                result.skipped.append(Skipped(mg.index, mg.title, _reciprocal_reason(mg)))
            else:
                keep.append(mg)
        result.micrographs = keep
        result.skipped.sort(key=lambda s: s.index)
    if not result.micrographs:
        raise ReadError(f"{p.name} holds no usable real-space image: {_summary(result.skipped)}")
    return result


def _scan_limited(p: Path, fmt: str, lazy: bool | None) -> ReadResult:
    """Parse ``p`` in a child process under the time and memory limits of :mod:`temzoo.io.untrusted`.

    Lazy (dask) entries cannot cross the process boundary: when the child finds one, its headers have been parsed
    safely there, so the parent opens the file again in-process (only headers and frame 0 are read).
    """
    _warm(p.suffix.lower())
    header, arrays = untrusted.run_limited(_scan_payload, str(p), fmt, lazy, LAZY_BYTES, name=p.name,
                                           preload=PRELOAD_MODULES)
    if header.get("lazy"):
        return _scan_raw(p, fmt, lazy)
    result = ReadResult(micrographs=[], source=str(p), format=fmt,
                        skipped=[Skipped(int(i), str(t), str(r)) for i, t, r in header["skipped"]])
    for d, data in zip(header["micrographs"], arrays):
        result.micrographs.append(Micrograph(
            data=data, pixel_size_nm=d["pixel_size_nm"], metadata=d["metadata"], source=str(p), index=d["index"],
            title=d["title"], original_dtype=d["original_dtype"], reciprocal=d["reciprocal"]))
    return result


# What HyperSpy imports on a format's first read (~2 s cold: its signal classes, dask, distributed, zarr and the
# RosettaSciIO plugin). The parent imports it before forking the parse, so every child starts warm (a child's own
# imports die with it); a fork server imports all of it once (PRELOAD_MODULES).
_EMD = ("rsciio.emd._api", "rsciio.utils._units", "h5py", "pint")
_READER_MODULES = {".dm3": ("rsciio.digitalmicrograph._api",), ".dm4": ("rsciio.digitalmicrograph._api",),
                   ".emd": _EMD, ".ser": ("rsciio.tia._api",), ".emi": ("rsciio.tia._api",),
                   ".mrc": ("rsciio.mrc._api",), ".tif": ("rsciio.tiff._api",), ".tiff": ("rsciio.tiff._api",)}
_HYPERSPY_MODULES = ["hyperspy.api", "hyperspy.io", "hyperspy.signals", "hyperspy._signals.signal2d",
                     "hyperspy._signals.lazy_signal2d", "dask.array", "distributed", "zarr"]
PRELOAD_MODULES = ["temzoo.io.readers", "temzoo.io.masks", "tifffile", "PIL.Image", *_HYPERSPY_MODULES,
                   *sorted({m for mods in _READER_MODULES.values() for m in mods})]


def _warm(ext: str) -> None:
    """Import what parsing a file with extension ``ext`` needs, here in the parent (see _READER_MODULES)."""
    import importlib

    if ext in PIL_EXTENSIONS or ext not in _READER_MODULES:
        import PIL.Image  # noqa: F401
        return
    _hyperspy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in (*_HYPERSPY_MODULES, *_READER_MODULES[ext]):
            try:
                importlib.import_module(name)
            except ImportError:  # an optional part missing: the child imports (or misses) it itself
                pass


def _scan_payload(path: str, fmt: str, lazy: bool | None, lazy_bytes: int = LAZY_BYTES) -> untrusted.Payload:
    """The child's side of :func:`_scan_limited`: declared-size checks, the parse, then plain JSON + arrays."""
    global LAZY_BYTES
    LAZY_BYTES = lazy_bytes  # a fork-server child holds the module as first imported, not the caller's setting
    p = Path(path)
    if fmt == "TIFF":
        untrusted.check_declared_tiff(p, lazy=lazy)
    result = _scan_raw(p, fmt, lazy)
    if any(_is_dask(mg.data) for mg in result.micrographs):
        return {"lazy": True}, []
    meta = [{"pixel_size_nm": mg.pixel_size_nm, "metadata": mg.metadata, "index": mg.index,
             "title": mg.title, "original_dtype": mg.original_dtype, "reciprocal": mg.reciprocal}
            for mg in result.micrographs]
    skipped = [[s.index, s.title, s.reason] for s in result.skipped]
    return {"micrographs": meta, "skipped": skipped}, [np.asarray(mg.data) for mg in result.micrographs]


def _scan_raw(p: Path, fmt: str, lazy: bool | None) -> ReadResult:
    if p.suffix.lower() in PIL_EXTENSIONS:
        return _scan_pil(p, fmt)
    return _scan_hyperspy(p, fmt, lazy)


def pick(result: ReadResult, index: int | None = None) -> Micrograph:
    """The micrograph at file entry ``index`` (or the first one) from a :func:`scan` result."""
    name = Path(result.source).name
    if index is None:
        return result.micrographs[0]
    for mg in result.micrographs:
        if mg.index == index:
            return mg
    for s in result.skipped:
        if s.index == index:
            raise ReadError(f"{name} entry {index} cannot be used: {s.reason}")
    usable = ", ".join(str(m.index) for m in result.micrographs)
    raise ReadError(f"{name} has no image entry {index}; usable entries: {usable} (see 'python -m temzoo inspect')")


def describe(mg: Micrograph) -> dict[str, Any]:
    """Plain-JSON summary of one micrograph, as ``inspect --json`` prints it (the app's metadata table too)."""
    out: dict[str, Any] = {
        "index": mg.index,
        "title": mg.title,
        "shape": list(mg.shape),
        "dtype": mg.original_dtype,
        "pixel_size_nm": mg.pixel_size_nm,
        "calibrated": mg.calibrated,
        "frames": mg.n_frames,
        "reciprocal": mg.reciprocal,
        "source": mg.source,
    }
    for key, value in mg.metadata.items():
        out.setdefault(key, value)
    return out


def safe_filename(name: str) -> str:
    """A file name that is safe to create in our own folder: base name only, plain characters, bounded length."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFKC", str(name)))[-1]
    stem, ext = os.path.splitext(base)
    stem = re.sub(r"[^A-Za-z0-9._ ,()+-]+", "_", stem).strip(" .")[:120] or "upload"
    ext = re.sub(r"[^A-Za-z0-9.]+", "", ext).lower()[:8]
    return stem + ext


# ----------------------------------------------------------------------------------------------------------------
# file checks


def _check_file(p: Path) -> str:
    ext = p.suffix.lower()
    if not p.exists():
        raise ReadError(f"no such file: {untrusted.shown(p)}")
    untrusted.require_regular(p)  # a FIFO or device would block the open() below
    if p.is_dir():
        raise ReadError(f"{untrusted.shown(p)} is a folder; give a microscope file such as a .dm4")
    if ext not in FORMATS:
        shown = ext or "no extension"
        raise ReadError(
            f"{p.name}: unsupported file type ({shown}); temzoo reads {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    size = p.stat().st_size
    if size == 0:
        raise ReadError(f"{p.name} is empty (0 bytes); copy it again from the microscope computer")
    fmt = FORMATS[ext]
    try:
        with open(p, "rb") as f:
            head = f.read(520)
    except OSError as err:
        raise ReadError(f"cannot open {p.name}: {err.strerror or err}") from None
    looks = next((fam for magic, off, fam in _MAGIC if head[off : off + len(magic)] == magic), None)
    family = fmt.split(" ")[0] if fmt.startswith("TIA") else fmt
    looks_family = looks.split(" ")[0] if looks and looks.startswith("TIA") else looks
    if looks and looks_family != family:
        raise ReadError(
            f"{p.name} is named {ext} but its content looks like {looks}; rename it to {_EXT_FOR[looks]} "
            "or export it again"
        )
    if looks is None and fmt in _SIGNED:
        raise ReadError(f"{p.name} is not a valid {fmt} file (unrecognised header); it may be corrupt or renamed")
    return fmt


def _summary(skipped: list[Skipped], limit: int = 3) -> str:
    if not skipped:
        return "the file lists no images"
    parts = [s.line() for s in skipped[:limit]]
    if len(skipped) > limit:
        parts.append(f"and {len(skipped) - limit} more")
    return "; ".join(parts)


def _reciprocal_reason(mg: Micrograph) -> str:
    scale = mg.metadata.get("reciprocal_scale")
    units = mg.metadata.get("units_in_file", "")
    cal = f" ({scale:.4g} {units} per pixel)" if scale else (f" (axes in {units})" if units else "")
    return f"reciprocal-space image{cal}, e.g. a diffraction pattern or FFT; temzoo segments real-space micrographs"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the readers' log lines and warnings: problems reach the user as one ReadError line instead."""
    roots = ("hyperspy", "rsciio", "tifffile", "PIL")
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in roots]
    loggers = [logging.getLogger(n) for n in {*roots, *names}]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _short(err: BaseException) -> str:
    msg = " ".join(str(err).split()) or type(err).__name__
    return msg if len(msg) <= 160 else msg[:157] + "..."


# ----------------------------------------------------------------------------------------------------------------
# HyperSpy / RosettaSciIO


def _scan_hyperspy(p: Path, fmt: str, lazy: bool | None) -> ReadResult:
    hs = _hyperspy()
    with _quiet():
        signals: Any = None
        # hs.load takes its argument as a glob pattern: a file named a[1].dm3 must be escaped to be found.
        # Lazy first: only headers are parsed, so corrupt headers claiming huge arrays cannot allocate memory
        # before the size checks below. Some entries (RGBA in DM) cannot be lazy: retry eagerly for modest files.
        try:
            signals = hs.load(glob.escape(str(p)), lazy=True)
        except Exception as err:  # noqa: BLE001 - any reader failure becomes one ReadError line
            first = err
            if p.stat().st_size <= EAGER_RETRY_BYTES:
                try:
                    signals = hs.load(glob.escape(str(p)), lazy=False)
                except Exception as err2:  # noqa: BLE001
                    first = err2
            if signals is None:
                raise ReadError(_reader_failure(p, fmt, first)) from None
        if not isinstance(signals, list):
            signals = [signals]
        if not signals and p.suffix.lower() == ".emi":
            raise ReadError(_reader_failure(p, fmt, ValueError("no data found")))
        result = ReadResult(micrographs=[], source=str(p), format=fmt)
        unit_hint = _imagej_unit(p) if fmt == "TIFF" else None
        for i, s in enumerate(signals):
            item: Micrograph | Skipped
            try:
                item = _classify(s, i, p, fmt, lazy, unit_hint)
            except ReadError as err:
                item = Skipped(i, _title(s, p), str(err))
            except Exception as err:  # noqa: BLE001 - truncated data surfaces only when computed
                item = Skipped(i, _title(s, p), f"data cannot be read ({_short(err)}); the file may be truncated")
            if not (isinstance(item, Micrograph) and _is_dask(item.data)):
                _close(s)  # lazy entries keep the file open; everything else is in memory now
            (result.micrographs if isinstance(item, Micrograph) else result.skipped).append(item)
        # drop the signals while still quiet: HyperSpy closes their files (and may log about it) when freed
        s = None
        signals.clear()
    return result


def _hyperspy() -> Any:
    """Import HyperSpy (slow-ish, so only when a file is read) without its import-time log chatter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import hyperspy.api as hs
        import rsciio  # noqa: F401 - its import sets its loggers' levels; do that before _quiet() overrides them
    return hs


def _reader_failure(p: Path, fmt: str, err: BaseException) -> str:
    if p.suffix.lower() == ".emi":
        return (f"{p.name} could not be read ({_short(err)}); an .emi file needs its .ser files beside it: "
                "open the .ser file instead")
    return (f"{p.name} could not be read as {fmt} ({_short(err)}); the file may be truncated or corrupt: "
            "copy or export it again")


def _close(s: Any) -> None:
    with contextlib.suppress(Exception):
        if getattr(s, "_lazy", False):
            s.close_file()


def _is_dask(a: Any) -> bool:
    return type(a).__module__.startswith("dask")


def _title(s: Any, p: Path) -> str:
    t = ""
    with contextlib.suppress(Exception):
        t = str(s.metadata.General.title or "")
    return " ".join(t.split()) or p.stem


def _imagej_unit(p: Path) -> str | None:
    """The length unit an ImageJ TIFF states in its description (RosettaSciIO only understands 'micron')."""
    with contextlib.suppress(Exception):
        import tifffile

        with tifffile.TiffFile(p) as tif:
            unit = (tif.imagej_metadata or {}).get("unit")
        if unit and unit_kind(unit) == "length":
            return str(unit)
    return None


def _classify(
    s: Any, i: int, p: Path, fmt: str, lazy: bool | None, unit_hint: str | None = None
) -> Micrograph | Skipped:
    title = _title(s, p)
    am = s.axes_manager
    sig, nav = am.signal_dimension, am.navigation_dimension
    dtype = np.dtype(s.data.dtype)
    signal_type = str(getattr(s.metadata.Signal, "signal_type", "") or "")
    shape = tuple(int(n) for n in s.data.shape)

    if sig != 2:
        if sig == 1:
            what = f"{signal_type} spectrum" if signal_type else "1D plot or spectrum"
            if nav:
                what = f"{signal_type or '1D'} spectrum image"
            return Skipped(i, title, f"{what} {'x'.join(map(str, shape))}, not an image")
        return Skipped(i, title, f"{sig}D signal {shape}, not an image")
    if nav > 1:
        return Skipped(i, title, f"{nav}-dimensional scan of images {shape} (e.g. 4D-STEM), not a micrograph or stack")
    if nav == 1:
        ax = am.navigation_axes[0]
        units = str(ax.units or "").strip().lower()
        if units in _SPECTRAL_UNITS or any(w in str(ax.name).lower() for w in ("energy", "wavelength")):
            return Skipped(i, title, f"spectrum image along '{ax.name}' ({ax.units}), not an image stack")
    if dtype.kind == "c":
        return Skipped(i, title, "complex values (an FFT or exit wave), not an intensity image; "
                                 "save the real-space image instead")
    if dtype.kind not in "biuf" and dtype.names is None:
        return Skipped(i, title, f"unsupported data type {dtype}")
    h, w = shape[-2:]
    frames = shape[0] if len(shape) == 3 else 1
    if h < 2 or w < 2:
        return Skipped(i, title, f"a line profile ({h}x{w} px), not an image")
    _check_size(h, w)

    x_ax, y_ax = am.signal_axes[0], am.signal_axes[1]
    px, reciprocal, meta = _calibration(x_ax, y_ax, unit_hint)
    meta = {"format": fmt, **meta}
    with contextlib.suppress(Exception):
        meta.update(acquisition_metadata(s.metadata.as_dictionary(), _small_original(s)))

    nbytes32 = 4 * h * w * frames
    keep_lazy = lazy if lazy is not None else (frames > 1 and nbytes32 > LAZY_BYTES)
    original_dtype = _dtype_name(dtype)
    if dtype.names is not None:  # RGB(A) in DM/TIFF: structured fields, cannot stay lazy
        keep_lazy = False
    if keep_lazy and frames > 1:
        import dask.array as da

        chunk = s.data.chunksize if _is_dask(s.data) else s.data.shape
        chunk_bytes = math.prod(int(n) for n in chunk) * max(4, dtype.itemsize)
        if chunk_bytes > untrusted.memory_budget() // 3:
            raise ReadError(
                f"a stack of {frames} frames of {h}x{w} px stored so that reading one frame needs "
                f"{chunk_bytes / 2**30:.1f} GiB of memory (more than temzoo decodes at once); save it uncompressed or one "
                "frame per page, or split the stack"
            )
        # One frame per chunk before the cast: a frame is then read on its own. Cast first and dask (one chunk for
        # a whole stack under 128 MiB) reads and converts every frame to hand out one.
        data = da.asarray(s.data).rechunk({0: 1}).astype(np.float32)
        # a full scan would read the whole stack; no dask thread pool (a process with threads cannot fork safely)
        _check_finite(np.asarray(data[0].compute(scheduler="synchronous")), "frame 0")
    else:
        arr = np.asarray(s.data.compute(scheduler="synchronous") if _is_dask(s.data) else s.data)
        arr, note = _to_grey(arr, channels_last=False)
        if note:
            meta["colour"] = note
        data = np.ascontiguousarray(arr, dtype=np.float32)
        _check_finite(data, "the image" if frames == 1 else "the stack")
    return Micrograph(data=data, pixel_size_nm=px, metadata=meta, source=str(p), index=i, title=title,
                      original_dtype=original_dtype, reciprocal=reciprocal)


def _small_original(s: Any) -> dict[str, Any]:
    """The few original-metadata groups used as fallbacks (Berkeley EMD), without converting whole DM tag trees."""
    out: dict[str, Any] = {}
    om = s.original_metadata
    for key in ("microscope", "sample"):
        with contextlib.suppress(Exception):
            if om.has_item(key):
                out[key] = om.get_item(key).as_dictionary()
    return out


def _check_size(h: int, w: int) -> None:
    if h > MAX_SIDE or w > MAX_SIDE or h * w > MAX_FRAME_PIXELS:
        raise ReadError(
            f"image is {h}x{w} px, larger than temzoo reads ({MAX_FRAME_PIXELS // 2**20} M px, {MAX_SIDE} px a side); "
            "the header may be corrupt, or bin/crop the image first"
        )


def _check_finite(a: np.ndarray, what: str) -> None:
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if bad:
        raise ReadError(f"{what} has {bad} of {a.size} pixels NaN or infinite; fill or crop them, then save again")


def _dtype_name(dtype: np.dtype) -> str:
    if dtype.names is not None:
        return "rgba8" if "A" in dtype.names else "rgb8"
    return str(dtype)


def _calibration(
    x_ax: Any, y_ax: Any, unit_hint: str | None = None
) -> tuple[float | None, bool, dict[str, Any]]:
    """(pixel size in nm or None, reciprocal?, metadata notes) from the two signal axes.

    ``unit_hint`` supplies the unit for axes that have a scale but no unit (ImageJ TIFFs in nm).
    """
    units_x, units_y = str(x_ax.units or ""), str(y_ax.units or "")
    if str(x_ax.units) == "<undefined>" or x_ax.units is None:
        units_x = ""
    if str(y_ax.units) == "<undefined>" or y_ax.units is None:
        units_y = ""
    if unit_hint and not units_x and not units_y:
        units_x = units_y = unit_hint
    kx, ky = unit_kind(units_x), unit_kind(units_y)
    uniform = bool(getattr(x_ax, "is_uniform", True) and getattr(y_ax, "is_uniform", True))
    sx = float(getattr(x_ax, "scale", 1.0) or 1.0) if uniform else math.nan
    sy = float(getattr(y_ax, "scale", 1.0) or 1.0) if uniform else math.nan
    meta: dict[str, Any] = {}
    units = units_x if units_x == units_y else f"{units_x} x {units_y}"
    if units.strip(" x"):
        meta["units_in_file"] = units

    if "reciprocal" in (kx, ky) or "angle" in (kx, ky):
        per_nm = to_per_nm(sx, units_x)
        meta["reciprocal_scale"] = per_nm if per_nm is not None else sx
        if per_nm is not None:
            meta["units_in_file"] = "1/nm"
        return None, True, meta
    if not uniform:
        meta["calibration_note"] = "non-uniform axes ignored"
        return None, False, meta
    if kx == "length" and ky == "length":
        nx, ny = to_nm(sx, units_x), to_nm(sy, units_y)
        if nx is None or ny is None:
            meta["calibration_note"] = "invalid scale in file ignored"
            return None, False, meta
        if abs(nx - ny) > SQUARE_TOLERANCE * max(nx, ny):
            raise ReadError(
                f"non-square pixels ({format_nm(nx)} along x, {format_nm(ny)} along y); temzoo needs square "
                "pixels: resample the image to square pixels first (e.g. HyperSpy's rebin)"
            )
        return (nx + ny) / 2, False, meta
    if "length" in (kx, ky):
        meta["calibration_note"] = "only one axis is calibrated; treated as uncalibrated"
    elif "unknown" in (kx, ky):
        meta["calibration_note"] = f"unknown units '{units}'; treated as uncalibrated"
    elif sx != 1.0 or sy != 1.0:
        meta["calibration_note"] = f"scale {sx:.4g} without units ignored"
    return None, False, meta


def _to_grey(arr: np.ndarray, *, channels_last: bool) -> tuple[np.ndarray, str | None]:
    """RGB(A) to one channel: the channel itself when R=G=B (greyscale stored as colour), else luminance.

    Colour comes as a structured dtype (DM, TIFF via RosettaSciIO) or, with ``channels_last``, as (H, W, 3|4) (PIL).
    """
    if arr.dtype.names is not None:
        names = [n for n in ("R", "G", "B") if n in arr.dtype.names]
        if len(names) < 3:
            raise ReadError(f"unsupported structured data type {arr.dtype}")
        arr = np.stack([arr[n] for n in names], axis=-1)
    elif not (channels_last and arr.ndim == 3 and arr.shape[-1] in (3, 4)):
        return arr, None
    rgb = arr[..., :3]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return r, "greyscale stored as RGB: one channel kept"
    lum = 0.299 * r.astype(np.float32) + 0.587 * g.astype(np.float32) + 0.114 * b.astype(np.float32)
    return lum, "colour image converted to grey (luminance 0.299 R + 0.587 G + 0.114 B)"


# ----------------------------------------------------------------------------------------------------------------
# PIL (PNG, JPEG)


def _scan_pil(p: Path, fmt: str) -> ReadResult:
    from PIL import Image, UnidentifiedImageError

    try:
        with _quiet():
            with Image.open(p) as im:
                w, h = im.size
                try:
                    _check_size(h, w)
                except ReadError as err:
                    raise ReadError(f"{p.name}: {err}") from None
                if h < 2 or w < 2:  # as for HyperSpy formats (_classify): a line or a dot is not a micrograph
                    raise ReadError(f"{p.name} is {w}x{h} px, too small to be a micrograph (a line profile?)")
                im.load()
                mode = im.mode
                if mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif mode in ("LA", "PA"):
                    im = im.getchannel(0)
                elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                    im = im.convert("RGB")
                arr = np.asarray(im)
    except ReadError:
        raise
    except Image.DecompressionBombError:
        raise ReadError(f"{p.name}: the image is larger than temzoo reads ({MAX_FRAME_PIXELS // 2**20} M px); "
                        "the header may be corrupt, or bin/crop the image first") from None
    except UnidentifiedImageError as err:
        raise ReadError(f"{p.name} is not a readable {fmt} image ({_short(err)}); export it again") from None
    except (OSError, ValueError, SyntaxError, MemoryError) as err:
        raise ReadError(f"{p.name} could not be read as {fmt} ({_short(err)}); the file may be truncated or corrupt")\
            from None
    original_dtype = {"1": "bool", "RGB": "rgb8", "RGBA": "rgba8"}.get(mode, str(arr.dtype))
    meta: dict[str, Any] = {"format": fmt}
    arr, note = _to_grey(arr, channels_last=True)
    if note:
        meta["colour"] = note
    data = np.ascontiguousarray(arr, dtype=np.float32)
    result = ReadResult(micrographs=[], source=str(p), format=fmt)
    try:
        _check_finite(data, "the image")
    except ReadError as err:
        result.skipped.append(Skipped(0, p.stem, str(err)))
        return result
    meta["calibration_note"] = f"{fmt} files carry no pixel size"
    result.micrographs.append(
        Micrograph(data=data, pixel_size_nm=None, metadata=meta, source=str(p), index=0, title=p.stem,
                   original_dtype=original_dtype)
    )
    return result
