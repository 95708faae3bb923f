"""Teach: guided lessons on ML for microscopy that run offline on a laptop CPU (see docs/LESSONS.md)."""

import streamlit as st

from temzoo.lessons import LESSONS
from ui import teach
from ui.routing import through_app

through_app(__file__)

st.title("Teach")
st.caption("Five short lessons that *show* what the literature says about segmenting TEM images. Every experiment "
           "runs here, offline, on simulated HRTEM data. Instructors: docs/LESSONS.md explains how to add one.")

titles = {teach.OVERVIEW: "Overview", **{x.id: x.title for x in LESSONS}}
lesson = st.radio("Lesson", list(titles), format_func=titles.get, key=teach.PICK, horizontal=True)
st.divider()
if lesson == teach.OVERVIEW:
    teach.overview()
else:
    teach.render(lesson)
