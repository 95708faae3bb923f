"""The sidebar every page shares: what image and model are current, and which device computes."""

from __future__ import annotations

import streamlit as st

from ui import state


@st.cache_resource
def _device_line() -> str:
    from temzoo.device import describe_device

    return describe_device()


def render_sidebar() -> None:
    with st.sidebar:
        st.caption("temzoo")
        mg = state.get(state.MICROGRAPH)
        if mg is None:
            st.markdown("**Image:** none loaded")
        else:
            from temzoo.io.units import format_nm

            px = format_nm(mg.pixel_size_nm)
            st.markdown(f"**Image:** {mg.title or mg.source} ({mg.shape[1]}x{mg.shape[0]}, {px})")
        model = state.get(state.MODEL_ID)
        st.markdown(f"**Model:** {model or 'none chosen'}")
        st.markdown(f"**Device:** {_device_line()}")
