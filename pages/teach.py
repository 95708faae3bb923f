"""Teach page (placeholder)."""

import streamlit as st

st.title("Teach")
st.info("This page is coming in a later version of temzoo.")
