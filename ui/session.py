"""This browser session's private working folder (labels, jobs) under TEMZOO_HOME, so sessions never share files."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import streamlit as st

from temzoo import paths
from ui import state

LABEL_SET = "tz_label_set"  # folder of the labelled set chosen for training (images/ + masks/)
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
