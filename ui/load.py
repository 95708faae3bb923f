"""Streamlit helpers for the Load page: cached reading of uploads and demo files, and the demo file list."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import streamlit as st

from temzoo.errors import TemzooError
from temzoo.io import ReadResult, scan, scan_bytes
from temzoo.paths import shared_data_dir

# (file under ../shared/data, what it shows): real files from public repositories, never copied into the repo
DEMO_FILES: list[tuple[str, str]] = [
    ("dm/rosettasciio/2D/multi_signal.dm3", "STEM HAADF, 300 kV, with a 1D plot beside it"),
    ("dm/particlespy/JEOL HAADF Image.dm4", "HAADF of nanoparticles, JEOL, 80 kV"),
    ("other-formats/ncempy/16_STOimage_1.ser", "SrTiO3 HAADF, FEI TIA"),
    ("other-formats/scifidatasets/EMDReader_Image_FEI.emd", "HAADF, Velox EMD (Talos)"),
    ("other-formats/ncempy/Acquisition_18.emd", "SrTiO3, Berkeley EMD"),
    ("other-formats/ncempy/temp.mrc", "3-frame stack, MRC"),
    ("dm/scifidatasets/DMReader_Image_SI-Survey.dm3", "atomic-resolution survey image, no calibration"),
    ("labeled/steel-dislocation-loops/images/1.png", "BF-TEM dislocation loops in steel, PNG"),
]

Outcome = tuple[ReadResult | None, str | None]  # (result, one-line error)


def demo_files() -> dict[str, Path]:
    """Label -> path for the demo files present under the shared data folder (empty if it is absent)."""
    root = shared_data_dir()
    if root is None:
        return {}
    out = {}
    for rel, what in DEMO_FILES:
        p = root / rel
        if p.is_file():
            out[f"{p.name} - {what}"] = p
    return out


@st.cache_data(max_entries=8, show_spinner="Reading file ...")
def _read_upload(digest: str, name: str, _data: bytes) -> Outcome:
    # keyed on the content hash (``_data`` is not hashed by Streamlit); errors are cached too, so a bad file is
    # not re-read on every rerun
    try:
        return scan_bytes(_data, name), None
    except TemzooError as err:
        return None, str(err)


@st.cache_data(max_entries=16, show_spinner="Reading file ...")
def _read_path(path: str, mtime: float, size: int) -> Outcome:
    try:
        return scan(path, lazy=False), None
    except TemzooError as err:
        return None, str(err)


def read_upload(data: bytes, name: str) -> Outcome:
    """Read uploaded bytes (cached on their SHA-256)."""
    return _read_upload(hashlib.sha256(data).hexdigest(), name, data)


def read_path(path: Path) -> Outcome:
    """Read a file on disk (cached on path, modification time and size)."""
    try:
        st_ = path.stat()
    except OSError:
        return None, f"no such file: {path}"
    return _read_path(str(path), st_.st_mtime, st_.st_size)


def image_label(mg: Any) -> str:
    from temzoo.io.units import format_nm

    frames = f", {mg.n_frames} frames" if mg.n_frames > 1 else ""
    return f"{mg.index}: {mg.title} ({mg.shape[1]}x{mg.shape[0]} px{frames}, {format_nm(mg.pixel_size_nm)})"


PX_KEY = "load_px"  # widget keys of the pixel-size field (cleared when another image becomes current)
PX_ON_KEY = "load_px_on"


def pixel_size_input(raw: Any, current: Any) -> float | None:
    """The pixel size (nm/px) a person gives for ``raw`` (the micrograph as read), or None for the file's own.

    Uncalibrated files get a number field (0 = unknown); calibrated ones an override toggle, then the field.
    ``current`` is the micrograph now in use (its given value, if any, is the field's starting value).
    """
    given = current.pixel_size_nm if current is not None and current.metadata.get("pixel_size_source") == "given" \
        else None
    help_text = ("Used for sizes in nm, for resampling to a model's pixel size, and recorded with labels, "
                 "fine-tuned models and exports.")
    if raw.pixel_size_nm is None:
        v = st.number_input("Pixel size (nm/px), not in this file: 0 = unknown", min_value=0.0, max_value=1e6,
                            value=float(given or 0.0), step=0.01, format="%.4f", key=PX_KEY, help=help_text)
        return float(v) or None
    if not st.toggle("Override the file's pixel size", value=given is not None, key=PX_ON_KEY, help=help_text):
        return None
    v = st.number_input("Pixel size (nm/px)", min_value=0.0, max_value=1e6, value=float(given or raw.pixel_size_nm),
                        step=0.001, format="%.5f", key=PX_KEY, help=help_text)
    return float(v) or None


def forget_pixel_size_input() -> None:
    for k in (PX_KEY, PX_ON_KEY):
        st.session_state.pop(k, None)
