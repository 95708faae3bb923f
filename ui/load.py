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
