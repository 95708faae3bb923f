"""Segment page (placeholder)."""

import streamlit as st

st.title("Segment")
st.info("This page is coming in a later version of temzoo.")
