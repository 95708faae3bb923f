"""Streamlit helpers for the Segment page: cached model loading, results cached per (image, model, options), and the
linked four-panel figure (image | mask overlay | confidence | importance).

Results live in ``st.session_state`` keyed on the frame's content hash + model + options, so switching a view,
moving a slider or downloading never recomputes a prediction; only a new image, model or option does.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import astuple

import numpy as np
import streamlit as st

from temzoo.errors import TemzooError

CACHE_KEY = "tz_segment_cache"
HASH_KEY = "tz_segment_hash"
MASK_KEY = "tz_segment_mask"  # (name, uint8 mask) uploaded for supervised metrics
# Entries kept per kind (key[0]); predictions and download bytes are the big ones (full-size maps).
MAX_ENTRIES = {"predict": 3, "explain": 4, "files": 2}
MAX_OTHER = 16


# ----------------------------------------------------------------------------------------------------------- models
@st.cache_resource(max_entries=4, show_spinner="Loading model ...")
def load_checkpoint(ref: str):
    """Shared between sessions: predict/explain never modify it (they run a private per-device copy)."""
    from temzoo.zoo import load_model

    return load_model(ref)


@st.cache_data(ttl=60, show_spinner=False)
def zoo_choices() -> list[str]:
    """Segmentation models available on disk now (bundled, local, cached), default base first."""
    try:
        from temzoo.zoo import list_models

        return [m.ref for m in list_models(hub=False) if m.task == "segmentation" and m.path is not None]
    except TemzooError:
        return []


def default_model() -> str | None:
    models = zoo_choices()
    return models[0] if models else None


# ------------------------------------------------------------------------------------------------------------ cache
def frame_key(mg, frame: int) -> str:
    """Content hash of one frame (+ calibration), remembered per micrograph object so it is computed once."""
    memo = st.session_state.setdefault(HASH_KEY, {})
    k = (id(mg), frame, mg.pixel_size_nm)
    if k not in memo:
        img = np.ascontiguousarray(mg.frame(frame))
        h = hashlib.blake2b(img.view(np.uint8), digest_size=16)
        h.update(repr((img.shape, mg.pixel_size_nm)).encode())
        memo.clear()  # one micrograph at a time; ids of dead objects could be reused
        memo[k] = h.hexdigest()
    return memo[k]


def _cache() -> OrderedDict:
    c = st.session_state.get(CACHE_KEY)
    if c is None:
        c = OrderedDict()
        st.session_state[CACHE_KEY] = c
    return c


def cached(key: tuple, compute):
    """Return ``compute()`` for ``key``, computing it only once (LRU per kind ``key[0]``, see :data:`MAX_ENTRIES`)."""
    c = _cache()
    if key in c:
        c.move_to_end(key)
        return c[key]
    value = compute()
    c[key] = value
    kind = key[0]
    same = [k for k in c if k[0] == kind]
    for old in same[: max(0, len(same) - MAX_ENTRIES.get(kind, MAX_OTHER))]:
        del c[old]
    return value


def cached_value(key: tuple):
    """What :func:`cached` holds for ``key`` (None when it was never computed or has been evicted)."""
    return _cache().get(key)


def options_key(opts) -> tuple:
    return astuple(opts)


def progress_bar(text: str):
    bar = st.progress(0.0, text=text)

    def cb(f: float, msg: str = "") -> None:
        bar.progress(float(min(max(f, 0.0), 1.0)), text=f"{text} {msg}")

    return bar, cb


def scale_line(pred) -> str:
    """How the image was scaled for the model, in words that never print a missing number ("- nm/px")."""
    from temzoo.io.units import format_nm

    f = float(pred.info.get("scale_factor", 1.0))
    how = "used at its own scale" if abs(f - 1) < 1e-6 else f"resampled x{f:.3g}"
    if pred.pixel_size_nm and pred.resampled_to_nm and abs(pred.pixel_size_nm - pred.resampled_to_nm) > 1e-9:
        return f"{how} from {format_nm(pred.pixel_size_nm)} to the model's {format_nm(pred.resampled_to_nm)}"
    if pred.pixel_size_nm:
        return f"{how} at {format_nm(pred.pixel_size_nm)}"
    return f"{how}; no pixel size (give it on the Load page for sizes in nm)"


# --------------------------------------------------------------------------------------------------------- figures
def read_uploaded_mask(data: bytes, name: str) -> None:
    """Read an uploaded mask (via temzoo.io.masks, from a private temporary file) into session state."""
    import tempfile
    from pathlib import Path

    from temzoo.io import safe_filename
    from temzoo.io.masks import read_mask

    prev = st.session_state.get(MASK_KEY)
    digest = hashlib.sha256(data).hexdigest()[:16]
    if prev is not None and prev[0].endswith(digest):
        return
    with tempfile.TemporaryDirectory(prefix="temzoo-mask-") as tmp:
        p = Path(tmp) / safe_filename(name)
        p.write_bytes(data)
        mask = read_mask(p)
    st.session_state[MASK_KEY] = (f"{name}#{digest}", mask)
