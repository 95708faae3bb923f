"""Zoo page (placeholder)."""

import streamlit as st

st.title("Zoo")
st.info("This page is coming in a later version of temzoo.")
