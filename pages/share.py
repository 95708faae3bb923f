"""Share page (placeholder)."""

import streamlit as st

st.title("Share")
st.info("This page is coming in a later version of temzoo.")
