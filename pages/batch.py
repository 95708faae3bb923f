"""Batch page: many micrographs (uploads or a folder on the server) through one model as a background job, with
progress, cancel and resume; the summary table, the aggregated size distribution, the series plot and one zip.

The job runs in its own process (temzoo.train.jobs, kind "batch"; the work is temzoo.batch.run_batch); this page
only reads its folder, every 2 s through a fragment while the job runs.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from temzoo import batch as tb
from temzoo import figures
from temzoo.errors import TemzooError
from temzoo.io.readers import SUPPORTED_EXTENSIONS
from temzoo.train import jobs
from ui import batch as ub
from ui import job_controls
from ui import segment as seg
from ui import state
from ui.routing import through_app

through_app(__file__)

JOB_KEY = "batch_job"

st.title("Batch")
st.caption("A folder, a series or a whole session of micrographs: every image (every frame of a stack) gets its "
           "export bundle, one summary row and its particles in one table. Runs in the background; a resumed job "
           "skips what is done.")
left, right = st.columns([1, 2], gap="large")

with left:
    ups = st.file_uploader("Micrographs", accept_multiple_files=True, key="batch_upload",
                           type=[e.lstrip(".") for e in SUPPORTED_EXTENSIONS])
    folder = st.text_input("... or a folder (or glob) on the server", key="batch_folder",
                           placeholder="/data/session-12 or /data/run/*.dm4").strip()
    choices = seg.zoo_choices()
    current = state.get(state.MODEL_ID) or seg.default_model()
    options = list(dict.fromkeys(([current] if current else []) + choices))
    model = st.selectbox("Model", options, key="batch_model") if options else None
    tta = st.toggle("TTA (x8 flips)", key="batch_tta")
    px = st.number_input("Pixel size (nm/px), 0 = from the files", 0.0, 1000.0, 0.0, format="%.4f",
                         key="batch_px")
    if st.button("Run batch", type="primary", disabled=not (model and (ups or folder)), key="batch_start"):
        try:
            inputs = [str(ub.keep_uploads(ups))] if ups else [folder]
            cfg = tb.BatchConfig(model=model, tta=tta, pixel_size_nm=px or None)
            handle = tb.submit_batch(inputs, cfg, root=ub.jobs_root())
            st.session_state[JOB_KEY] = str(handle.dir)
            st.toast(f"Batch job {handle.id} queued")
        except TemzooError as err:
            st.error(str(err))


def _results(out: Path, key: str) -> None:
    res = tb.read_outputs(out)
    if res is None:
        return
    bad = res.summary[res.summary["status"] != "ok"]
    st.subheader(f"Summary: {len(res.summary) - len(bad)} image(s), {len(bad)} failed")
    st.dataframe(res.summary.drop(columns=["file"]), hide_index=True, key=f"batch_table_{key}")
    d, unit = tb.particle_diameters(res.particles, res.calibrated)
    c1, c2 = st.columns(2)
    c1.plotly_chart(figures.size_distribution_figure(d, unit), key=f"batch_sizes_{key}")
    if len(res.series) > 1:
        c2.plotly_chart(figures.series_figure(res.series), key=f"batch_series_{key}")
    st.download_button("Download everything (zip)", tb.zip_outputs(out), file_name=f"{out.parent.name}-batch.zip",
                       mime="application/zip", key=f"batch_zip_{key}", type="primary")


def _panel(d: str, was_active: bool) -> None:
    s = jobs.describe(d)
    if was_active and not s.active:
        st.rerun()  # finished: redraw the whole page once, which also stops the polling
    done, total = tb.job_progress(d)
    c = st.columns(3)
    c[0].metric("State", s.state)
    c[1].metric("Files", f"{done}/{total}" if total else "–")
    c[2].metric("Attempts", s.attempts)
    if s.active:
        st.progress(done / total if total else 0.0)
    job_controls.render(d, s, "batch", "Cancelling after the current file…")
    if not s.active:
        _results(Path(jobs.read_config(d).get("out") or Path(d) / "out"), s.id)
    with st.expander("Log"):
        st.code(jobs.read_log(d) or "(empty)", language=None)


with right:
    dirs = ub.batch_jobs()
    if not dirs:
        st.info("No batch yet: upload micrographs or give a folder, then run.")
    else:
        if st.session_state.get(JOB_KEY) not in dirs:
            st.session_state[JOB_KEY] = dirs[0]
        current_job = st.selectbox("Batch job", dirs, key=JOB_KEY, format_func=ub.label)
        active = jobs.describe(current_job).active
        st.fragment(run_every=2.0 if active else None)(_panel)(current_job, active)
