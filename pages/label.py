"""Label page (placeholder)."""

import streamlit as st

st.title("Label")
st.info("This page is coming in a later version of temzoo.")
