"""Zoo page: browse the models available here (bundled, local, cached, Hub), read their cards, pick one."""

from __future__ import annotations

import streamlit as st

from temzoo.errors import TemzooError
from temzoo.zoo import network
from temzoo.zoo.cards import card_body
from temzoo.zoo.sources import filter_models, list_models, resolve
from ui import session, state
from ui.routing import through_app

through_app(__file__)

BADGES = {  # where the model lives -> (label, colour)
    "bundled": ("bundled", "blue"),
    "local": ("your zoo", "green"),
    "cache": ("HF cache", "violet"),
    "hub": ("Hub", "orange"),
}

st.title("Zoo")
st.caption("Models that segment or denoise TEM/HRTEM micrographs. Pick one to segment with or to fine-tune from.")

online = network.online()
try:
    models = list_models(hub=online, include_damaged=True)
except TemzooError as err:
    st.error(str(err))
    st.stop()
if damaged := [m for m in models if m.damaged]:
    st.warning(f"{len(damaged)} model folder(s) damaged and skipped: "
               + "; ".join(f"{m.id} ({m.source}): {m.damaged}" for m in damaged))
    models = [m for m in models if not m.damaged]
if not online:
    st.info("Offline: showing bundled, your own and cached models. Hub models appear when the Hub is reachable.",
            icon=":material/cloud_off:")

mg = state.get(state.MICROGRAPH)
image_px = float(mg.pixel_size_nm) if mg is not None and getattr(mg, "calibrated", False) else 0.0
c1, c2, c3 = st.columns([1, 2, 1])
task = c1.selectbox("Task", ["any", "segmentation", "denoising"], key="zoo_task")
all_tags = sorted({t for m in models for t in m.tags})
tags = c2.multiselect("Tags (any of)", all_tags, key="zoo_tags")
px = c3.number_input("Pixel size of your image (nm/px)", min_value=0.0, value=image_px, step=0.01, format="%.4f",
                     help="Show models trained within 2x of it (0 = any). Models without a pixel size always show.",
                     key="zoo_px")
shown = filter_models(models, task=None if task == "any" else task, tags=tags, pixel_size_nm=px or None)

if not models:
    st.warning("No models available yet: none bundled, none in your local zoo, none cached. "
               "Fine-tune one on the Fine-tune page, or connect to the Hub.")
elif not shown:
    st.info(f"None of the {len(models)} models match these filters.")
current = state.get(state.MODEL_ID)

for i, m in enumerate(shown):
    with st.container(border=True, key=f"zoo_model_{i}"):
        head, action = st.columns([4, 1])
        with head:
            label, colour = BADGES.get(m.source, (m.source, "gray"))
            st.markdown(f"#### {m.id}")
            badges = st.container(horizontal=True)
            with badges:
                st.badge(label, color=colour)
                st.badge(m.task, color="gray")
                if m.default_base:
                    st.badge("default base", icon=":material/star:", color="yellow")
                if current == m.ref:
                    st.badge("current model", icon=":material/check:", color="green")
            st.write(m.description or "No description.")
            facts = [
                f"{m.pixel_size_nm:g} nm/px" if m.pixel_size_nm else "pixel size not recorded",
                f"classes: {', '.join(m.classes)}" if m.classes else None,
                f"{m.params / 1e6:.2f} M parameters" if m.params else None,
                ", ".join(m.tags) if m.tags else None,
            ]
            st.caption(" · ".join(f for f in facts if f))
        with action:
            verb = "Download and use" if m.source == "hub" else "Use this model"
            if st.button(verb, key=f"zoo_use_{i}", type="primary" if current != m.ref else "secondary",
                         disabled=current == m.ref):
                try:
                    if m.source == "hub":
                        bar = st.progress(0.0, text=f"Downloading {m.id}")
                        resolve(m.ref, progress=lambda f, text: bar.progress(f, text=text))
                        bar.empty()
                    session.use_model(m.ref)
                    st.rerun()
                except TemzooError as err:
                    st.error(str(err))
        card = m.card
        if card:
            with st.expander("Model card"):
                st.markdown(card_body(card, demote=2))
        elif m.source == "hub":
            st.caption("The model card downloads with the model.")

if current:
    st.success(f"Current model: **{current}**. Go to Segment to apply it or Fine-tune to adapt it.")
