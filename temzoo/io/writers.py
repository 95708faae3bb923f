"""Writing predictions: mask PNG, float32 TIFF, particle CSV, ``.hspy`` with calibration, summary JSON.

Every writer has a ``*_bytes`` twin for the app's download buttons, so files and downloads are the same bytes.
Files are written atomically (temporary file + rename): a crash never leaves half a file under the real name.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from temzoo.errors import DataError


def _atomic_write(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # open() (not mkstemp) so the file gets the user's umask permissions, like any other file they write.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------------------------------------- masks
def mask_png_bytes(mask: np.ndarray) -> bytes:
    """Binary masks as 0/255 (viewable anywhere), multi-class masks as raw class indices; 8-bit greyscale PNG."""
    from PIL import Image

    m = np.asarray(mask)
    if m.ndim != 2:
        raise DataError(f"a mask must be 2D, got shape {m.shape}")
    m = m.astype(np.uint8)
    out = m * 255 if m.max(initial=0) <= 1 else m
    buf = io.BytesIO()
    Image.fromarray(out, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def write_mask_png(path: str | Path, mask: np.ndarray) -> Path:
    return _atomic_write(path, mask_png_bytes(mask))


# ------------------------------------------------------------------------------------------------------- TIFF
def tiff_bytes(array: np.ndarray, pixel_size_nm: float | None = None, dtype: Any = np.float32) -> bytes:
    """A TIFF of ``array`` (float32 by default); the pixel size goes into the resolution tags (per cm) and
    ImageJ's ``unit``/``spacing`` so Fiji shows nm."""
    import tifffile

    a = np.ascontiguousarray(np.asarray(array), dtype=dtype)
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if pixel_size_nm and a.dtype in (np.float32, np.uint8, np.uint16):
        # ImageJ reads x/y spacing as 1/resolution in ``unit``: pixels per nm, unit nm.
        kwargs = {"imagej": True, "resolution": (1.0 / pixel_size_nm, 1.0 / pixel_size_nm),
                  "metadata": {"unit": "nm"}}
    tifffile.imwrite(buf, a, **kwargs)
    return buf.getvalue()


def write_tiff(path: str | Path, array: np.ndarray, pixel_size_nm: float | None = None,
               dtype: Any = np.float32) -> Path:
    return _atomic_write(path, tiff_bytes(array, pixel_size_nm, dtype))


# -------------------------------------------------------------------------------------------------------- CSV
def particles_csv_bytes(table) -> bytes:
    """A particle table (pandas DataFrame) as UTF-8 CSV without the index."""
    return table.to_csv(index=False, float_format="%.6g").encode("utf-8")


def write_particles_csv(path: str | Path, table) -> Path:
    return _atomic_write(path, particles_csv_bytes(table))


# ------------------------------------------------------------------------------------------------------- JSON
def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if np.isfinite(v) else None
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def json_bytes(obj: dict) -> bytes:
    return (json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_json(path: str | Path, obj: dict) -> Path:
    return _atomic_write(path, json_bytes(obj))


def summary(prediction, n_objects: int | None = None, extra: dict | None = None) -> dict:
    """The ``summary.json`` record of ARCHITECTURE.md (plus warnings and run info)."""
    from temzoo.metrics import label_objects

    mask = prediction.mask
    if n_objects is None:
        n_objects = int(label_objects(mask).max())
    out = {
        "model": prediction.model_id,
        "pixel_size_nm": prediction.pixel_size_nm,
        "resampled_to_nm": prediction.resampled_to_nm,
        "shape": list(mask.shape),
        "seconds": round(float(prediction.seconds), 4),
        "mean_confidence": float(np.mean(prediction.confidence)),
        "foreground_fraction": float(np.mean(mask > 0)),
        "n_objects": int(n_objects),
        "warnings": list(prediction.warnings),
        "info": prediction.info,
    }
    if extra:
        out.update(extra)
    return _jsonable(out)


# ------------------------------------------------------------------------------------------------------ HyperSpy
def hspy_bytes(prediction, micrograph=None, image: np.ndarray | None = None) -> bytes:
    """A HyperSpy ``.hspy`` file holding image (if given), mask, probability and confidence as a calibrated stack.

    Axes carry the pixel size in nm (``scale``, ``units``), so HyperSpy/RosettaSciIO reopen it calibrated.
    """
    with tempfile.TemporaryDirectory(prefix="temzoo-hspy-") as tmp:
        p = write_hspy(Path(tmp) / "prediction.hspy", prediction, micrograph, image)
        return p.read_bytes()


def write_hspy(path: str | Path, prediction, micrograph=None, image: np.ndarray | None = None) -> Path:
    import hyperspy.api as hs

    layers, names = [], []
    if image is not None:
        layers.append(np.asarray(image, np.float32))
        names.append("image")
    layers += [prediction.mask.astype(np.float32), np.asarray(prediction.probability, np.float32)
               if prediction.probability.ndim == 2 else prediction.mask.astype(np.float32),
               prediction.confidence.astype(np.float32)]
    names += ["mask", "probability" if prediction.probability.ndim == 2 else "class", "confidence"]
    s = hs.signals.Signal2D(np.stack(layers))
    s.metadata.General.title = f"temzoo prediction ({prediction.model_id})"
    s.axes_manager[0].name = "layer"
    px = prediction.pixel_size_nm
    for ax, name in ((s.axes_manager[1], "x"), (s.axes_manager[2], "y")):
        ax.name = name
        if px:
            ax.scale = float(px)
            ax.units = "nm"
    s.metadata.set_item("temzoo.layers", names)
    s.metadata.set_item("temzoo.model", prediction.model_id)
    s.metadata.set_item("temzoo.resampled_to_nm", prediction.resampled_to_nm or 0.0)
    if micrograph is not None:  # absolute: the same file whichever way its path was typed
        s.metadata.set_item("temzoo.source", str(Path(micrograph.source).resolve()) if micrograph.source else "")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.hspy")
    s.save(str(tmp), overwrite=True)
    os.replace(tmp, path)
    return path
