"""Send a first visit to a page's URL through app.py, so the navigation, sidebar and network setup always run.

On a freshly started server, before any session has run app.py, Streamlit still resolves ``/zoo`` with its legacy
``pages/`` discovery and runs ``pages/zoo.py`` alone: no ``st.navigation`` sections, no sidebar, no offline/online
decision. A bookmarked page after a server restart would land there. Each page calls :func:`through_app` first; it
switches to app.py (keeping the URL's query, e.g. ``?session=``), and app.py switches back to the page asked for.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

APP_RAN = "tz_app_ran"  # set by app.py in every run of every session
WANTED_PAGE = "tz_wanted_page"  # page file a legacy first visit asked for


def through_app(page_file: str) -> None:
    """No-op when app.py runs this page (or in AppTest on the page file alone); otherwise reroute via app.py."""
    ctx = get_script_run_ctx()
    if ctx is None or st.session_state.get(APP_RAN) or Path(ctx.main_script_path).name != "app.py":
        return
    st.session_state[WANTED_PAGE] = Path(page_file).name
    st.switch_page(Path(ctx.main_script_path).name, query_params=st.query_params.to_dict())


def mark_app_ran() -> str | None:
    """Called by app.py: records that it ran and returns the page file a legacy first visit asked for, if any."""
    st.session_state[APP_RAN] = True
    return st.session_state.pop(WANTED_PAGE, None)
