"""Session-state keys shared between pages. Session state holds small objects, ids and paths, never tensors."""

from __future__ import annotations

from typing import Any

import streamlit as st

MICROGRAPH = "tz_micrograph"  # temzoo.Micrograph currently loaded (one image, possibly a stack)
MICROGRAPH_PATH = "tz_micrograph_path"  # file the current micrograph was read from (a kept copy for uploads)
MICROGRAPH_FILE = "tz_micrograph_file"  # the current micrograph as read from its file (before a given pixel size)
FRAME = "tz_frame"  # frame index in a stack
MODEL_ID = "tz_model_id"  # zoo id, local folder or Hub id of the current model
SESSION_DIR = "tz_session_dir"  # per-session working folder (labels, jobs) so sessions never share files

DEFAULT_MODEL_ID: str | None = None  # set by the zoo registry's first entry when the zoo page/sidebar loads it


def init() -> None:
    """Create the keys once per session."""
    st.session_state.setdefault(MICROGRAPH, None)
    st.session_state.setdefault(FRAME, 0)
    st.session_state.setdefault(MODEL_ID, None)


def get(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def set(key: str, value: Any) -> None:  # noqa: A001 - mirrors st.session_state
    st.session_state[key] = value
