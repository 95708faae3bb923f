"""Compare page (placeholder)."""

import streamlit as st

st.title("Compare")
st.info("This page is coming in a later version of temzoo.")
