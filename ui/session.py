"""This browser session's private working folder (labels, jobs) under TEMZOO_HOME, so sessions never share files."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import streamlit as st

from temzoo import paths
from ui import state

LABEL_SET = "tz_label_set"  # folder of the labelled set chosen for training (images/ + masks/)
CURRENT_FILE = "current.json"  # the current image (file, entry, frame, pixel size) and model, for a reload (F5)
UPLOADS = "uploads"  # copies of uploaded files, so a reload can read the current image again
URL_KEY = "session"  # ?session=<id> in the address bar: a reload or a server restart finds the same folder again
_ID = re.compile(r"[0-9a-f]{16}")  # what secrets.token_hex(8) makes; anything else in the URL is ignored


def restore() -> None:
    """Run on every page (app.py). A new browser session whose URL names an existing session folder adopts it (a
    reload, or the app restarted); an existing one keeps its id in the URL. Never creates a folder."""
    d = st.session_state.get(state.SESSION_DIR)
    if not d:
        sid = st.query_params.get(URL_KEY, "")
        if _ID.fullmatch(sid) and (paths.home() / "sessions" / sid).is_dir():
            st.session_state[state.SESSION_DIR] = str(paths.home() / "sessions" / sid)
            _restore_current(paths.home() / "sessions" / sid)
        return
    if st.query_params.get(URL_KEY) != Path(d).name:
        st.query_params[URL_KEY] = Path(d).name


def session_dir() -> Path:
    """``$TEMZOO_HOME/sessions/<random id>``, created on first use and kept in session state (and in the URL)."""
    d = st.session_state.get(state.SESSION_DIR)
    if not d:
        d = str(paths.home() / "sessions" / secrets.token_hex(8))
        st.session_state[state.SESSION_DIR] = d
    Path(d).mkdir(parents=True, exist_ok=True)
    if st.query_params.get(URL_KEY) != Path(d).name:
        st.query_params[URL_KEY] = Path(d).name
    return Path(d)


def labels_dir() -> Path:
    """The session's own labelled set (what the Label page draws and uploads into)."""
    return session_dir() / "labels"


def jobs_root() -> Path:
    """Job folders started from this session (the GPU queue itself is shared by all sessions)."""
    return session_dir() / "jobs"


# -------------------------------------------------------------------------------------- current image and model (F5)
def keep_upload(data: bytes, name: str) -> Path:
    """A copy of an uploaded file in this session's folder (named after it), so a reload can read it again."""
    from temzoo.io import safe_filename

    d = session_dir() / UPLOADS
    d.mkdir(exist_ok=True)
    p = d / safe_filename(name)
    if not p.is_file() or p.read_bytes() != data:
        tmp = p.with_name(p.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(p)
    return p


def use_model(ref: str) -> None:
    """Make ``ref`` the current model (Zoo, Segment, Fine-tune pages) and keep it for a reload."""
    state.set(state.MODEL_ID, ref)
    remember()


def remember() -> None:
    """Write the current image (its file, entry, frame, given pixel size) and model to the session folder."""
    mg = state.get(state.MICROGRAPH)
    doc = {"model": state.get(state.MODEL_ID), "frame": int(state.get(state.FRAME, 0) or 0)}
    path = st.session_state.get(state.MICROGRAPH_PATH)
    if mg is not None and path:
        given = mg.metadata.get("pixel_size_source") == "given"
        doc.update({"path": str(path), "index": mg.index, "pixel_size_nm": mg.pixel_size_nm if given else None})
    f = session_dir() / CURRENT_FILE
    text = json.dumps(doc)
    if not f.is_file() or f.read_text() != text:
        tmp = f.with_name(f.name + ".part")
        tmp.write_text(text)
        tmp.replace(f)


def _restore_current(folder: Path) -> None:
    """Read the image and model a reload left behind; a missing or unreadable file just starts empty."""
    from temzoo.errors import TemzooError
    from temzoo.io import read_micrograph

    try:
        doc = json.loads((folder / CURRENT_FILE).read_text())
    except (OSError, ValueError):
        return
    if not isinstance(doc, dict):
        return
    if isinstance(doc.get("model"), str):
        state.set(state.MODEL_ID, doc["model"])
    path = doc.get("path")
    if not isinstance(path, str):
        return
    try:
        raw = read_micrograph(path, doc.get("index"), lazy=False)
        mg = raw.with_pixel_size(doc.get("pixel_size_nm"))
    except (TemzooError, OSError, TypeError, ValueError):
        return
    state.set(state.MICROGRAPH_FILE, raw)
    state.set(state.MICROGRAPH, mg)
    state.set(state.MICROGRAPH_PATH, path)
    frame = doc.get("frame")
    state.set(state.FRAME, frame if isinstance(frame, int) and 0 <= frame < mg.n_frames else 0)
