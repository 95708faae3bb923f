"""Finetune page (placeholder)."""

import streamlit as st

st.title("Finetune")
st.info("This page is coming in a later version of temzoo.")
