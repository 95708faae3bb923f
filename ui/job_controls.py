"""Controls every job panel shares (Fine-tune and Batch pages): the error line, Cancel and Resume."""

from __future__ import annotations

from temzoo.train import jobs


def render(d: str, s, prefix: str, cancel_note: str) -> list:
    """The error line and the Cancel / Resume buttons of a job panel (Fine-tune and Batch pages); returns the
    button columns (the third is free for the page's own action)."""
    import streamlit as st

    from temzoo.errors import TemzooError

    if s.error:
        (st.warning if s.state in ("interrupted", "cancelled") else st.error)(s.error)
    b = st.columns(3)
    if s.active and b[0].button("Cancel", key=f"{prefix}_cancel_{s.id}"):
        jobs.cancel(d)
        st.toast(cancel_note)
    if s.resumable and b[1].button("Resume", key=f"{prefix}_resume_{s.id}"):
        try:
            jobs.resume(d)
            st.rerun()
        except TemzooError as err:
            st.error(str(err))
    return b
