"""Fine-tune page: pick a labelled set, a base model, a strategy and a budget; start a background job; watch it learn.

The job runs in its own process (temzoo.train.jobs); this page only reads its folder. Curves refresh every 2 s
through a fragment, and only while the job is queued or running.
"""

from __future__ import annotations

import streamlit as st

from temzoo import figures
from temzoo.errors import TemzooError
from temzoo.train import comparison, jobs
from temzoo.train.config import TrainConfig
from ui import job_controls
from ui import training_form as uj
from ui import session, state
from ui.routing import through_app

through_app(__file__)

JOB_KEY = "ft_job"

st.title("Fine-tune")
st.caption("Teach a zoo model your images: a few labelled micrographs, a strategy, a few minutes. "
           "The job runs in the background (one at a time on the GPU, queued otherwise); you can leave this page.")
root = session.jobs_root()
left, right = st.columns([1, 2], gap="large")

with left:
    folder, set_px = uj.set_picker("ft")
    base = uj.base_picker("ft", set_px, folder)
    strategy = uj.strategy_picker("ft")
    opts = uj.budget_inputs("ft", base)
    opts["pixel_size_nm"] = opts["pixel_size_nm"] or set_px
    name = st.text_input("Name of the result in your zoo", key="ft_name", placeholder="e.g. uo2-boundaries-v1")
    if st.button("Start fine-tuning", type="primary", disabled=folder is None, key="ft_start"):
        try:
            cfg = TrainConfig(images=str(folder / "images"), masks=str(folder / "masks"), base=base,
                              strategy=strategy, **opts).validate()
            handle = jobs.submit(cfg, root=root, name=name.strip() or None)
            st.session_state[JOB_KEY] = str(handle.dir)
            st.toast(f"Job {handle.id} queued")
        except TemzooError as err:
            st.error(str(err))


def _label(d: str) -> str:
    # Stable text (no state in it): a selectbox keeps its choice by the option's label.
    s = jobs.describe(d)
    text = f"{s.name} · {jobs.read_config(d).get('strategy', '?')}"
    return text if s.id in s.name else f"{text} · {s.id}"


def _panel(d: str, was_active: bool) -> None:
    s = jobs.describe(d)
    if was_active and not s.active:
        st.rerun()  # finished: redraw the whole page once, which also stops the polling
    cfg = jobs.read_config(d)
    recs = jobs.read_metrics(d)
    best = comparison.summarize_job(d)  # a kept base shows the base's F1, not its epochs' (#14.4)
    c = st.columns(4)
    c[0].metric("State", s.state)
    c[1].metric("Epochs", len(recs))
    f1 = best["best_val_f1"]
    c[2].metric("Best val F1", f"{f1:.3f}" if isinstance(f1, (int, float)) else "–",
                help="The base's own validation F1: no epoch beat it" if best["base_kept"] else None)
    ran = jobs.ran_seconds(s)  # every attempt: a resumed job counts the time before its resume
    c[3].metric("Time left" if s.active else "Ran for",
                uj.fmt_seconds(jobs.eta_seconds(d) if s.active else ran))
    st.caption(f"Device: {s.device or 'not started yet'} · base {cfg.get('base')} · strategy {cfg.get('strategy')}"
               " · "
               f"batch {s.batch_size} · job {s.id}"
               + (f" · {s.attempts} attempts, {uj.fmt_seconds(ran)} in all" if s.attempts > 1 else ""))
    if s.state == "running":
        if cfg.get("minutes") and ran:
            frac = ran / (float(cfg["minutes"]) * 60)
        else:
            frac = len(recs) / max(int(cfg.get("epochs") or 1), 1)
        st.progress(min(max(frac, 0.0), 1.0))
    if recs:
        st.plotly_chart(figures.metrics_figure({s.name: recs}), width="stretch", key=f"ft_fig_{s.id}")
    elif s.active:
        st.info("Waiting for the first epoch…" if s.state == "running" else "Queued: another job uses the device.")
    b = job_controls.render(d, s, "ft", "Cancelling at the next step…")
    if s.state == "done" and s.result:
        st.success(f"Saved to your zoo: {s.result}")
        if note := jobs.base_kept_note(s.result):
            st.warning(note)
        if b[2].button("Use this model", type="primary", key=f"ft_use_{s.id}"):
            session.use_model(s.result)
            st.rerun()
    with st.expander("Log"):
        st.code(jobs.read_log(d) or "(empty)", language=None)


with right:
    all_jobs = jobs.list_jobs(root)
    if damaged := [s for s in all_jobs if s.state == jobs.DAMAGED]:
        st.warning(f"{len(damaged)} job folder(s) damaged and skipped: " + "; ".join(s.error or s.id for s in damaged))
        all_jobs = [s for s in all_jobs if s.state != jobs.DAMAGED]
    if not all_jobs:
        st.info("No jobs yet: choose a labelled set and start one.")
    else:
        dirs = [s.dir for s in reversed(all_jobs)]  # newest first
        if st.session_state.get(JOB_KEY) not in dirs:
            st.session_state[JOB_KEY] = dirs[0]
        current = st.selectbox("Job", dirs, key=JOB_KEY, format_func=_label)
        active = jobs.describe(current).active
        st.fragment(run_every=2.0 if active else None)(_panel)(current, active)
