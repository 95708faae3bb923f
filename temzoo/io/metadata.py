"""Acquisition metadata worth showing (voltage, magnification, exposure, microscope, date) from HyperSpy's tree.

HyperSpy maps each format's tags into one ``metadata`` tree; a few formats (Berkeley EMD) only carry them in
``original_metadata``, so those are looked up as a fallback. Values are plain JSON types; absent ones are left out.
"""

from __future__ import annotations

import math
from typing import Any


def _get(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _text(v: Any) -> str | None:
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if v is None:
        return None
    s = " ".join(str(v).split())
    return s or None


def acquisition_metadata(md: dict[str, Any], original: dict[str, Any] | None = None) -> dict[str, Any]:
    """Flat dict: ``voltage_kv, magnification, exposure_s, dwell_time_s, acquisition_mode, microscope, date,
    authors, sample`` (only the keys found)."""
    original = original or {}
    tem = _get(md, "Acquisition_instrument.TEM") or _get(md, "Acquisition_instrument.SEM") or {}
    out: dict[str, Any] = {}

    kv = _number(_get(tem, "beam_energy"))
    if kv is None:  # Berkeley EMD: volts in original metadata
        volts = _number(_get(original, "microscope.high tension"))
        kv = volts / 1000 if volts else None
    if kv:
        out["voltage_kv"] = kv

    mag = _number(_get(tem, "magnification")) or _number(_get(original, "microscope.magnification"))
    if mag:
        out["magnification"] = mag

    found = {
        "exposure_s": _number(_get(tem, "Detector.Camera.exposure")) or _number(_get(tem, "Camera.exposure")),
        "dwell_time_s": _number(_get(tem, "dwell_time")) or _number(_get(original, "microscope.dwell time")),
        "acquisition_mode": _text(_get(tem, "acquisition_mode")),
        "microscope": _text(_get(tem, "microscope")) or _text(_get(original, "microscope.name")),
    }
    out.update({k: v for k, v in found.items() if v})

    date = _text(_get(md, "General.date"))
    if date:
        time = _text(_get(md, "General.time"))
        out["date"] = f"{date}T{time}" if time else date
    authors = _text(_get(md, "General.authors"))
    if authors:
        out["authors"] = authors
    sample = _text(_get(md, "Sample.description")) or _text(_get(original, "sample.sample name"))
    if sample:
        out["sample"] = sample
    return out
