"""Share page: pick a checkpoint from your local zoo, review and edit its model card, push it to the Hub."""

from __future__ import annotations

import streamlit as st

from temzoo.errors import TemzooError
from temzoo.paths import local_zoo_dir
from temzoo.zoo import hub, network
from temzoo.zoo.cards import card_body, card_for_folder, write_card
from temzoo.zoo.sources import list_models
from ui.routing import through_app

through_app(__file__)

st.title("Share")
st.caption("Publish a checkpoint you fine-tuned: one commit to the Hugging Face Hub with its model card.")

try:
    mine = [m for m in list_models(hub=False) if m.source == "local"]
except TemzooError as err:
    st.error(str(err))
    st.stop()
if not mine:
    st.info(f"Your local zoo ({local_zoo_dir()}) has no checkpoints yet. Fine-tune one on the Fine-tune page; "
            "its result lands there.")
    st.stop()


def _written(m) -> float:
    """When the checkpoint's weights were written (a copy into the zoo keeps the time): the newest comes first."""
    try:
        return (m.path / "model.safetensors").stat().st_mtime
    except OSError:
        return 0.0


mine.sort(key=_written, reverse=True)
names = [m.id for m in mine]
choice = st.selectbox("Checkpoint", names, key="share_model")
model = mine[names.index(choice)]
st.caption(f"Folder: `{model.path}`")

card_key = f"share_card_{model.id}"
if card_key not in st.session_state:
    try:
        st.session_state[card_key] = card_for_folder(model.path)
    except TemzooError as err:
        st.error(str(err))
        st.stop()

edit, preview = st.tabs(["Edit card", "Preview"])
with edit:
    text = st.text_area("Model card (README.md: YAML header + markdown)", key=card_key, height=420)
    if st.button("Save card", key="share_save"):
        try:
            write_card(model.path, text)
            st.success("Card saved to the checkpoint folder.")
        except TemzooError as err:
            st.error(str(err))
with preview:
    st.markdown(card_body(text))

st.subheader("Push to the Hub")
has_token = hub.has_token()
online = network.online()
if not has_token:
    st.warning("No Hugging Face token found. Set the HF_TOKEN environment variable or run `hf auth login` in a "
               "terminal, then reload this page. temzoo never asks for the token here.", icon=":material/key_off:")
elif not online:
    st.info(f"The Hub ({network.endpoint()}) is not reachable right now; push when you are online.",
            icon=":material/cloud_off:")
with st.form("share_push"):
    repo = st.text_input("Repository (org/name)", placeholder="my-lab/" + model.id, key="share_repo")
    private = st.toggle("Private repository", value=True, key="share_private")
    # keyed per checkpoint: one key for all would keep the first checkpoint's name after another is picked
    message = st.text_input("Commit message", value=f"Upload {model.id} with temzoo", key=f"share_message_{model.id}")
    pushed = st.form_submit_button("Push", type="primary", disabled=not (has_token and online))
if pushed:
    try:
        with st.spinner(f"Pushing {model.id} to {repo}..."):
            write_card(model.path, text)  # what the user sees is what gets published
            url = hub.push(model.path, repo.strip(), private=private, message=message)
        st.success(f"Pushed: {url}")
    except TemzooError as err:
        st.error(str(err))
