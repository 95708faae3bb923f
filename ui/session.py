"""This browser session's private working folder (labels, jobs) under TEMZOO_HOME, so sessions never share files."""

from __future__ import annotations

import secrets
from pathlib import Path

import streamlit as st

from temzoo import paths
from ui import state

LABEL_SET = "tz_label_set"  # folder of the labelled set chosen for training (images/ + masks/)


def session_dir() -> Path:
    """``$TEMZOO_HOME/sessions/<random id>``, created on first use and kept in session state."""
    d = st.session_state.get(state.SESSION_DIR)
    if not d:
        d = str(paths.home() / "sessions" / secrets.token_hex(8))
        st.session_state[state.SESSION_DIR] = d
    Path(d).mkdir(parents=True, exist_ok=True)
    return Path(d)


def labels_dir() -> Path:
    """The session's own labelled set (what the Label page draws and uploads into)."""
    return session_dir() / "labels"


def jobs_root() -> Path:
    """Job folders started from this session (the GPU queue itself is shared by all sessions)."""
    return session_dir() / "jobs"
