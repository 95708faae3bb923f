"""The export bundle: the ONE set of files a prediction is saved as, by CLI ``predict``, batch runs and the Segment
page's downloads alike.

Files are named after the source image (``<name>_mask.png``, ``<name>.hspy`` ...), where ``<name>`` is
:func:`bundle_name`: the file's stem, plus ``_frameNNN`` for a frame of a stack. The bundle holds

- ``<name>_mask.png``: 0/255 (binary) or class indices (multi-class), 8-bit;
- ``<name>_mask.tif``: the class-index mask as uint8, calibrated (Fiji shows nm);
- ``<name>_probability.tif``, ``<name>_confidence.tif``: float32 0..1, calibrated;
- ``<name>_importance.tif``: float32, when an explanation was computed;
- ``<name>_particles.csv``: one row per object (sizes in nm when calibrated);
- ``<name>_summary.json``: model, pixel sizes, counts, confidence, warnings, annotation-free metrics;
- ``<name>.hspy``: image, mask, probability and confidence as one calibrated HyperSpy stack;
- ``<name>_overlay.png``: the image (percentile contrast) with the mask in red.

The bytes come from :mod:`temzoo.io.writers`, so a download and a file on disk are the same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

OVERLAY_ALPHA = 0.45
OVERLAY_COLOUR = (255, 60, 40)
MIME = {".png": "image/png", ".tif": "image/tiff", ".csv": "text/csv", ".json": "application/json",
        ".hspy": "application/x-hdf5"}


@dataclass
class Bundle:
    """A prediction's export files in memory: ``files`` maps file name -> bytes (insertion order = display order)."""

    name: str
    files: dict[str, bytes]
    summary: dict
    table: Any  # the particle table (pandas DataFrame)
    extra: dict = field(default_factory=dict)

    def write(self, folder: str | os.PathLike) -> list[Path]:
        """Write every file into ``folder`` (created), each atomically; returns the paths."""
        from temzoo.io.writers import _atomic_write

        folder = Path(folder)
        return [_atomic_write(folder / n, data) for n, data in self.files.items()]


def bundle_name(source: str | os.PathLike, frame: int = 0, n_frames: int = 1) -> str:
    """The name every file of a bundle starts with: the source file's stem (made safe), ``_frameNNN`` for stacks."""
    from temzoo.io.readers import safe_filename

    stem = os.path.splitext(safe_filename(Path(str(source)).name or "image"))[0] or "image"
    return f"{stem}_frame{frame:03d}" if n_frames > 1 else stem


def overlay_rgb(image: np.ndarray, mask: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The image in grey (0.5-99.5 percentile contrast) with foreground pixels tinted red; uint8 (H, W, 3)."""
    from temzoo.viz import contrast_limits, to_uint8

    lo, hi = contrast_limits(image)
    grey = np.repeat(to_uint8(image, lo, hi)[..., None], 3, axis=2)
    return tint(grey, mask, alpha)


def tint(rgb: np.ndarray, mask: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """``rgb`` with the pixels where ``mask > 0`` blended towards the overlay colour (a new array)."""
    out = rgb.astype(np.float32)
    m = np.asarray(mask) > 0
    out[m] = (1 - alpha) * out[m] + alpha * np.asarray(OVERLAY_COLOUR, np.float32)
    return out.astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return buf.getvalue()


def source_path(micrograph) -> str:
    """The source file as an absolute path (the same string whichever way the file was named on the command line)."""
    return str(Path(micrograph.source).resolve()) if micrograph.source else ""


def build_bundle(prediction, micrograph, frame: int = 0, *, explanation=None, table=None, domain=None,
                 extra: dict | None = None, name: str | None = None) -> Bundle:
    """Every export file of one prediction of ``micrograph``'s frame ``frame``, in memory.

    ``explanation`` (a :class:`temzoo.explain.Explanation`) adds ``_importance.tif``; ``table`` reuses a particle
    table already computed; ``domain`` (a :class:`temzoo.metrics.DomainCheck`) adds its warnings and score;
    ``extra`` is merged into ``summary.json``.
    """
    from temzoo import metrics as tzm
    from temzoo.io import writers as w

    name = name or bundle_name(micrograph.source, frame, micrograph.n_frames)
    px = prediction.pixel_size_nm
    if table is None:
        table = tzm.particle_table(prediction.mask, prediction.confidence, px)
    image = micrograph.frame(frame)
    metrics = {k: v for k, v in tzm.unsupervised_metrics(prediction).items() if k != "size_histogram"}
    info = {"image": source_path(micrograph), "image_name": Path(micrograph.source).name,
            "image_index": micrograph.index, "frame": frame, "n_frames": micrograph.n_frames,
            "maps": sorted(prediction.maps), "metrics": metrics}
    if domain is not None:
        score = getattr(domain, "score", None)  # the out-of-distribution score, where the domain check gives one
        info["domain"] = {"warnings": list(domain.warnings), "score": None if score is None else float(score)}
    files = {
        f"{name}_mask.png": w.mask_png_bytes(prediction.mask),
        f"{name}_mask.tif": w.tiff_bytes(prediction.mask, px, dtype=np.uint8),
        f"{name}_probability.tif": w.tiff_bytes(prediction.probability, px),
        f"{name}_confidence.tif": w.tiff_bytes(prediction.confidence, px),
    }
    if explanation is not None:
        files[f"{name}_importance.tif"] = w.tiff_bytes(explanation.importance, px)
        info["explain"] = {"method": explanation.method, "seconds": round(explanation.seconds, 3),
                           **{k: v for k, v in explanation.info.items() if k in ("bands", "receptive_field")}}
    files[f"{name}_particles.csv"] = w.particles_csv_bytes(table)
    files[f"{name}_overlay.png"] = png_bytes(overlay_rgb(image, prediction.mask))
    files[f"{name}.hspy"] = w.hspy_bytes(prediction, micrograph, image)
    summary = w.summary(prediction, n_objects=len(table), extra={**info, **(extra or {})})
    files[f"{name}_summary.json"] = w.json_bytes(summary)
    return Bundle(name=name, files=files, summary=summary, table=table)


def export_prediction(folder: str | os.PathLike, prediction, micrograph, frame: int = 0, **kwargs) -> Bundle:
    """Build the bundle (see :func:`build_bundle`) and write it into ``folder``; returns it."""
    bundle = build_bundle(prediction, micrograph, frame, **kwargs)
    bundle.write(folder)
    return bundle


def mime(filename: str) -> str:
    """The MIME type of a bundle file (for download buttons)."""
    return MIME.get(os.path.splitext(filename)[1].lower(), "application/octet-stream")


__all__ = ["Bundle", "build_bundle", "bundle_name", "export_prediction", "mime", "overlay_rgb", "tint"]
