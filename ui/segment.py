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


def summary_metrics(summary: dict) -> None:
    """The label-free numbers of the class's kind: objects (count, cut by the edge, convex) or a network (grains)."""
    unit = summary["size_unit"]
    m = st.columns(7)
    if summary["kind"] == "network":
        m[0].metric("Grains", summary["n_grains"], help="Regions enclosed by the predicted boundary network")
        m[1].metric("Convex grains", summary["convex_grains"], help="Ochoa et al.'s annotation-free grain count")
        m[2].metric("Grains inside the field", summary["n_grains_interior"], help="Not cut by the image edge")
    else:
        m[0].metric("Objects", summary["n_objects"])
        m[1].metric("Convex objects", summary["convex_objects"], help="Ochoa et al.'s annotation-free count")
        m[2].metric("Cut by the edge", summary["n_edge_objects"],
                    help="Touch the image border: flagged, and left out of the sizes by default")
    m[3].metric("Foreground", f"{100 * summary['foreground_fraction']:.1f} %")
    m[4].metric("Mean confidence", f"{summary['mean_confidence']:.3f}")
    md = summary["median_diameter"]
    what = "Median grain diameter" if summary["kind"] == "network" else "Median diameter"
    m[5].metric(what, f"{md:.3g} {unit}" if md is not None else "-",
                help="Objects cut by the image edge are left out unless counted (the toggle above)")
    m[6].metric("Uncertain pixels", f"{100 * summary['uncertain_fraction']:.1f} %",
                help=f"confidence below {summary['uncertain_below']}")


SUPERVISED_KEYS = {"objects": ["f1", "iou", "precision", "recall", "object_f1", "count_error", "size_distance", "ece"],
                   "network": ["f1", "iou", "precision", "recall", "n_pred_grains", "n_true_grains",
                               "size_distance", "ece"]}
SUPERVISED_LABELS = {"n_pred_grains": "grains (model)", "n_true_grains": "grains (mask)",
                     "size_distance": "size distance (Wasserstein)"}


def supervised_metrics_row(sup: dict) -> None:
    """Metrics against a human mask for the class's kind (no object F1 or count error for a network)."""
    keys = SUPERVISED_KEYS[sup.get("kind", "objects")]
    for col, k in zip(st.columns(len(keys)), keys):
        v = sup.get(k)
        col.metric(SUPERVISED_LABELS.get(k, k), "-" if v is None else (str(v) if isinstance(v, int) else f"{v:.3f}"))


def domain_line(domain) -> str:
    """The domain-shift score in words (temzoo.ood), or why there is none."""
    if domain.score is None:
        return "No domain-shift reference in this model's temzoo.json. "
    verdict = "unlike its training images" if domain.score > domain.threshold else "like its training images"
    return f"Domain-shift score {domain.score:.2f} (warns above {domain.threshold:.2f}): {verdict}. "


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
