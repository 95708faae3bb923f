"""temzoo app: the router and the shared sidebar. No compute here; every page is widgets -> one temzoo call -> render."""

import streamlit as st

from temzoo.zoo.network import configure
from ui import routing, session, state
from ui.sidebar import render_sidebar

configure()  # online/offline decided before anything imports huggingface_hub (it reads the env at import)

st.set_page_config(page_title="temzoo", page_icon=":material/biotech:", layout="wide")
state.init()
session.restore()  # a reload or a restarted server finds this session's labels and jobs again (?session=<id>)

PAGES = {
    "Data": [
        st.Page("pages/load.py", title="Load", icon=":material/upload_file:", default=True),
        st.Page("pages/label.py", title="Label", icon=":material/brush:"),
    ],
    "Models": [
        st.Page("pages/zoo.py", title="Zoo", icon=":material/pets:"),
        st.Page("pages/segment.py", title="Segment", icon=":material/grain:"),
        st.Page("pages/batch.py", title="Batch", icon=":material/stacks:"),
        st.Page("pages/finetune.py", title="Fine-tune", icon=":material/model_training:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
        st.Page("pages/share.py", title="Share", icon=":material/cloud_upload:"),
    ],
    "Learn": [
        st.Page("pages/teach.py", title="Teach", icon=":material/school:"),
    ],
}

wanted = routing.mark_app_ran()
nav = st.navigation(PAGES)
if wanted:  # a first visit to /<page> on a fresh server came here through ui.routing: go back to that page
    st.switch_page(f"pages/{wanted}", query_params=st.query_params.to_dict())
render_sidebar()
nav.run()
