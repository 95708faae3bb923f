"""Load page: upload a microscope file (or pick a demo), check its calibration, contrast and power spectrum.

The chosen image becomes the current micrograph (``ui.state.MICROGRAPH``, frame in ``ui.state.FRAME``) for the
other pages.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from temzoo.errors import TemzooError
from temzoo.io import SUPPORTED_EXTENSIONS, describe
from temzoo.io.units import format_length, format_nm
from temzoo.figures import micrograph_figure, power_spectrum_figure
from ui import load as load_ui
from ui import session, state
from ui.routing import through_app

through_app(__file__)

LOADED_KEY = "tz_load_identity"  # (source, index, content id) of the micrograph this page last made current

st.title("Load a micrograph")
st.caption(
    "DigitalMicrograph (DM3, DM4), EMD (Velox, Berkeley), TIA SER, MRC, TIFF, PNG and JPEG. The pixel size is "
    "read from the file; spectra, plots and diffraction patterns in a file are listed and skipped."
)

source = st.radio("Source", ["Upload a file", "Demo file"], horizontal=True, label_visibility="collapsed")
result, error, content_id = None, None, None
if source == "Upload a file":
    upload = st.file_uploader(
        "Microscope file", type=[e.lstrip(".") for e in SUPPORTED_EXTENSIONS],
        help="An .emi file needs its .ser beside it: upload the .ser file instead.",
    )
    if upload is not None:
        result, error = load_ui.read_upload(upload.getvalue(), upload.name)
        content_id = upload.file_id
        file_path = lambda: session.keep_upload(upload.getvalue(), upload.name)  # noqa: E731 - kept on first use
else:
    demos = load_ui.demo_files()
    if not demos:
        st.info(
            "No demo files here: they are read from the shared data folder `../shared/data` beside the checkout "
            "(or `$TEMZOO_SHARED_DATA`), which this installation does not have. Upload a file instead."
        )
    else:
        label = st.selectbox("Demo file", list(demos))
        result, error = load_ui.read_path(demos[label])
        content_id = str(demos[label])
        file_path = lambda: demos[label]  # noqa: E731

if error:
    st.error(error)

mg = None
if result is not None:
    if len(result.micrographs) > 1:
        labels = [load_ui.image_label(m) for m in result.micrographs]
        pos = st.selectbox("Image in this file", range(len(labels)), format_func=lambda i: labels[i])
        mg = result.micrographs[pos]
    else:
        mg = result.micrographs[0]
    if result.skipped:
        st.caption("Skipped in this file: " + "; ".join(s.line() for s in result.skipped))
    identity = (mg.source, mg.index, content_id)
    if st.session_state.get(LOADED_KEY) != identity:
        st.session_state[LOADED_KEY] = identity
        state.set(state.MICROGRAPH_FILE, mg)
        state.set(state.MICROGRAPH, mg)
        state.set(state.MICROGRAPH_PATH, str(file_path()))
        state.set(state.FRAME, 0)
        load_ui.forget_pixel_size_input()
        session.remember()
        st.rerun()  # the sidebar (drawn before this page) should name the new image at once
elif not error:
    mg = state.get(state.MICROGRAPH)
    if mg is None:
        st.info("Upload a file or pick a demo file to begin.")
    else:
        st.caption(f"Current micrograph (loaded earlier): {mg.title or mg.source}")

if mg is not None:
    # the pixel size a person gives replaces the file's for every page (Segment, Label, Fine-tune, exports)
    raw = state.get(state.MICROGRAPH_FILE) or mg
    try:
        mg = raw.with_pixel_size(load_ui.pixel_size_input(raw, state.get(state.MICROGRAPH)))
    except TemzooError as err:
        st.error(str(err))
        mg = state.get(state.MICROGRAPH) or raw
    current = state.get(state.MICROGRAPH)
    if current is None or mg.pixel_size_nm != current.pixel_size_nm:
        state.set(state.MICROGRAPH, mg)
        session.remember()
        st.rerun()  # the sidebar names the pixel size

    frame = 0
    if mg.n_frames > 1:
        frame = st.slider("Frame", 0, mg.n_frames - 1, min(int(state.get(state.FRAME, 0) or 0), mg.n_frames - 1))
        state.set(state.FRAME, frame)
    img = mg.frame(frame)
    h, w = mg.shape

    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Pixel size", format_nm(mg.pixel_size_nm))
    c2.metric("Size", f"{w} x {h} px" + (f" x {mg.n_frames}" if mg.n_frames > 1 else ""))
    c3.metric("Field of view", format_length(w * mg.pixel_size_nm) if mg.calibrated else "-")
    c4.metric("Stored as", mg.original_dtype)
    if mg.metadata.get("pixel_size_source") == "given":
        st.caption(f"Pixel size given here: {format_nm(mg.pixel_size_nm)} (the file says "
                   f"{format_nm(mg.metadata.get('file_pixel_size_nm'))}).")
    if not mg.calibrated:
        st.warning(
            "This image has no pixel size in its file: give it above for sizes in nm; until then sizes are in "
            "pixels, and models trained at a known pixel size cannot be matched to it. " + mg.metadata.get("calibration_note", "")
        )

    low, high = st.slider("Contrast limits (percentiles)", 0.0, 100.0, (0.5, 99.5), step=0.1)
    left, right = st.columns(2)
    with left:
        st.plotly_chart(micrograph_figure(img, mg.pixel_size_nm, low=low, high=high, title=mg.title),
                        key="load_image")
    with right:
        st.plotly_chart(power_spectrum_figure(img, mg.pixel_size_nm, title="Power spectrum (log |FFT|^2)"),
                        key="load_fft")

    st.subheader("Metadata")
    info = describe(mg)
    info["pixel_size"] = format_nm(mg.pixel_size_nm)
    # st.table (plain HTML), not st.dataframe: short key/value lists read better and stay searchable text
    values = [f"{v:.6g}" if isinstance(v, float) else str(v) for v in info.values()]
    st.table(pd.DataFrame({"value": values}, index=list(info)))
