"""Streamlit helpers shared by the pages (state keys, sidebar, error display). The library lives in ``temzoo``."""
