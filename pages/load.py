"""Load page (placeholder)."""

import streamlit as st

st.title("Load")
st.info("This page is coming in a later version of temzoo.")
