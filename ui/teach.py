"""Streamlit side of the Teach section: one render function per lesson (widgets -> one temzoo.lessons call -> plots).

Session keys start with ``teach_<lesson id>_`` so that a lesson's reset button clears exactly its own widgets and
results. Results are small (curves, a few 128-160 px maps), never models.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from temzoo.errors import TemzooError
from temzoo.lessons import LESSONS, lesson_module
from temzoo.lessons.workspace import LessonModel, Workspace

PICK = "teach_lesson"
OVERVIEW = "overview"
STANDIN_SECONDS = 45.0


def key(lesson: str, name: str) -> str:
    return f"teach_{lesson}_{name}"


def reset(lesson: str) -> None:
    """Callback: forget this lesson's widgets and results (runs before the next script run)."""
    prefix = f"teach_{lesson}_"
    for k in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[k]


def workspace() -> Workspace:
    return Workspace()


def workdir():
    from ui.session import session_dir

    return session_dir() / "lesson-runs"


@st.cache_resource(show_spinner=False)
def _field(root: str):
    from temzoo.lessons.dose_defocus import load_field

    return load_field(Workspace(root))


def field(ws: Workspace):
    with st.spinner("Simulating the lesson field once (multislice, a few seconds; cached afterwards)..."):
        return _field(str(ws.root))


def checkpoint(model: LessonModel):
    from temzoo.lessons.workspace import load

    return load(model)


def try_checkpoint(model: LessonModel | None):
    """The checkpoint, or None with an error box when it cannot be loaded (a damaged folder): the lesson goes on."""
    if model is None:
        return None
    try:
        return checkpoint(model)
    except TemzooError as err:
        st.error(f"{model.label}: {err}")
        return None


def lesson_start(intro: str) -> tuple[Workspace, LessonModel | None]:
    """The lesson's introduction, its workspace and the model it uses (with a caption saying which)."""
    st.markdown(intro)
    ws = workspace()
    model = ws.find_model()
    model_caption(model)
    return ws, model


def model_caption(model: LessonModel | None) -> None:
    if model is None:
        st.warning("No model yet: the zoo model `hrtem-nanoparticle` is not installed and no stand-in has been "
                   "trained. Build the stand-in below (about a minute) or install the zoo model.")
    elif model.kind == "stand-in":
        st.warning(f"Model: **{model.label}**. Its numbers are weaker than the zoo model's; the lessons work the "
                   "same and switch to the zoo model as soon as it is installed.")
    else:
        st.caption(f"Model: **{model.label}** ({model.ref})")


def progress_runner(label: str) -> tuple[object, Callable[[float, str], None]]:
    """An ``st.status`` box with a progress bar; returns (status, callback)."""
    status = st.status(label, expanded=True)
    bar = status.progress(0.0, text="starting")

    def cb(frac: float, text: str = "") -> None:
        bar.progress(min(1.0, max(0.0, float(frac))), text=text or None)

    return status, cb


def ensure_model(ws: Workspace, cb: Callable[[float, str], None] | None = None) -> LessonModel:
    """The lesson model, training the stand-in (inside the caller's status box) when nothing is installed."""
    found = ws.find_model()
    if found is not None:
        return found
    return ws.build_standin(STANDIN_SECONDS, progress=cb)


def build_standin_button(ws: Workspace, lesson: str) -> None:
    if st.button(f"Build the stand-in model (about {STANDIN_SECONDS + 20:.0f} s)", key=key(lesson, "standin")):
        status, cb = progress_runner("Simulating a small training set and training the stand-in model...")
        try:
            ws.build_standin(STANDIN_SECONDS, progress=cb)
        except TemzooError as err:
            status.update(label="Stand-in training failed", state="error")
            st.error(str(err))
            return
        status.update(label="Stand-in model ready", state="complete")
        st.rerun()


def question(lesson: str, mod, answer_text: str | None) -> None:
    st.subheader("Question")
    st.markdown(mod.QUESTION)
    with st.expander("Show the answer"):
        st.markdown(answer_text or "Run the experiment above first: the answer quotes its numbers.")


def show_findings(lines: list[str]) -> None:
    st.markdown("**What the numbers say**\n\n" + "\n".join(f"- {x}" for x in lines))


def reset_button(lesson: str) -> None:
    st.button("Reset this lesson", key=key(lesson, "reset"), on_click=reset, args=(lesson,),
              icon=":material/restart_alt:")


def run_guarded(lesson: str, label: str, fn: Callable[[Callable[[float, str], None]], object]) -> object | None:
    """Run ``fn(progress)`` inside a status box; a TemzooError becomes st.error (the page keeps running)."""
    status, cb = progress_runner(label)
    try:
        out = fn(cb)
    except TemzooError as err:
        status.update(label=f"{label} -- failed", state="error")
        st.error(str(err))
        return None
    status.update(label=f"{label} -- done", state="complete", expanded=False)
    return out


# ------------------------------------------------------------------------------------------------------- lesson 1
DOSE_STEPS = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


@st.cache_data(show_spinner=False, max_entries=8)
def _sweeps(root: str, model_ref: str | None, mtime: float):
    from temzoo.lessons import dose_defocus as L
    from temzoo.lessons.workspace import load

    fld = _field(root)
    ck = load(LessonModel(model_ref, "", "")) if model_ref else None
    return (L.sweep(fld, "dose", L.DOSES, -10.0, ck), L.sweep(fld, "defocus", L.DEFOCI, 1000.0, ck))


def _mtime(model: LessonModel | None) -> float:
    from pathlib import Path

    if model is None:
        return 0.0
    w = Path(model.ref) / "model.safetensors"
    return w.stat().st_mtime if w.exists() else 0.0


def lesson_dose_defocus() -> None:
    from temzoo.lessons import dose_defocus as L
    from temzoo import figures as F

    lid = "dose-defocus"
    st.markdown(L.INTRO)
    ws = workspace()
    try:
        fld = field(ws)
    except TemzooError as err:
        st.error(str(err))
        return
    model = ws.find_model()
    model_caption(model)
    if model is None:
        build_standin_button(ws, lid)
    c1, c2 = st.columns(2)
    dose = c1.select_slider("Dose (electrons per Å²)", DOSE_STEPS, value=1000, key=key(lid, "dose"))
    defocus = c2.slider("Defocus (nm, positive = underfocus)", -30, 30, -10, key=key(lid, "defocus"))
    ck = try_checkpoint(model)
    if ck is None:
        model = None
    v = L.view(fld, float(dose), float(defocus), ck)
    m = st.columns(4)
    m[0].metric("SNR", f"{v.snr:.2f}")
    m[1].metric("Contrast (std/mean)", f"{v.contrast:.3f}")
    m[2].metric("Model F1 vs truth", "-" if v.f1 is None else f"{v.f1:.2f}")
    m[3].metric("Mean confidence", "-" if v.mean_confidence is None else f"{v.mean_confidence:.2f}")
    a, b = st.columns(2)
    a.plotly_chart(F.lesson_image(v.image, v.pixel_size_nm, f"Image: {dose} e/Å², defocus {defocus} nm"),
                   key=key(lid, "img"))
    b.plotly_chart(F.lesson_spectrum(v.image, v.pixel_size_nm), key=key(lid, "fft"))
    if v.probability is not None:
        a, b = st.columns(2)
        a.plotly_chart(F.lesson_heat(v.probability, v.pixel_size_nm, "Model: particle probability (white: truth)",
                              contour=v.truth), key=key(lid, "prob"))
        b.plotly_chart(F.lesson_heat(v.confidence, v.pixel_size_nm, "Model: confidence", zmin=0.5,
                              colorscale="Cividis"), key=key(lid, "conf"))
    st.subheader("Read the plots")
    with st.spinner("Sweeping dose and defocus..."):
        ds, fs = _sweeps(str(ws.root), model.ref if model else None, _mtime(model))
    a, b = st.columns(2)
    a.plotly_chart(F.lesson_dose_sweep(ds, float(dose)), key=key(lid, "dsweep"))
    b.plotly_chart(F.lesson_defocus_sweep(fs, float(defocus)), key=key(lid, "fsweep"))
    show_findings(L.findings(ds, fs))
    question(lid, L, L.answer(ds, fs))


# ------------------------------------------------------------------------------------------------------- lesson 2
def lesson_fringes() -> None:
    import numpy as np

    from temzoo import figures as F
    from temzoo.lessons import fringes as L

    lid = "fringes"
    ws, model = lesson_start(L.INTRO)
    c1, c2, c3 = st.columns(3)
    dose = c1.select_slider("Dose (e/Å²)", DOSE_STEPS, value=1000, key=key(lid, "dose"))
    defocus = c2.slider("Defocus (nm)", -30, 30, -10, key=key(lid, "defocus"))
    steps = c3.slider("Integrated-gradient steps", 4, 32, 16, 4, key=key(lid, "steps"),
                      help="More steps: a more exact attribution, proportionally slower.")
    if st.button("Run the analysis (about 30 s)", key=key(lid, "run"), type="primary"):
        def job(cb):
            mdl = ensure_model(ws, lambda f, t="": cb(0.5 * f, t)) if model is None else model
            lo = 0.5 if model is None else 0.0
            return L.run(checkpoint(mdl), _field(str(ws.root)), float(dose), float(defocus), int(steps), mdl.label,
                         progress=lambda f, t="": cb(lo + (1 - lo) * f, t))

        res = run_guarded(lid, "Band ablation, attributions and receptive field", job)
        if res is not None:
            st.session_state[key(lid, "result")] = res
    res = st.session_state.get(key(lid, "result"))
    if res is not None:
        st.caption(f"Analysed at {res.dose:g} e/Å², defocus {res.defocus_nm:g} nm, in {res.seconds:.0f} s "
                   f"({res.model_label}).")
        a, b = st.columns(2)
        a.plotly_chart(F.lesson_bands(res), key=key(lid, "bands"))
        lim = float(np.percentile(np.abs(res.attribution), 99.5)) or 1.0
        b.plotly_chart(F.lesson_heat(res.attribution, res.pixel_size_nm, "Integrated gradients (white: truth)", -lim, lim,
                              colorscale="RdBu", contour=res.truth), key=key(lid, "ig"))
        a, b = st.columns(2)
        a.plotly_chart(F.lesson_receptive_field(res), key=key(lid, "rf"))
        b.plotly_chart(F.lesson_ruler(res), key=key(lid, "ruler"))
        b.caption(f"Lattice period: {res.lattice_spacing_nm:.3f} nm, {res.spacing_source}.")
        show_findings(L.findings(res))
    question(lid, L, L.answer(res) if res is not None else None)


# ------------------------------------------------------------------------------------------------------- lesson 3
def _training_inputs(lid: str, default_s: float) -> float:
    return float(st.slider("Seconds of training per run", 5, 40, int(default_s), key=key(lid, "seconds"),
                           help="Each curve is a real training run on this CPU; longer runs give higher scores."))


def lesson_label_count() -> None:
    import pandas as pd

    from temzoo import figures as F
    from temzoo.lessons import label_count as L

    lid = "labels"
    ws, model = lesson_start(L.INTRO)
    c1, c2 = st.columns(2)
    with c1:
        seconds = _training_inputs(lid, L.DEFAULT_SECONDS)
    counts = c2.multiselect("Labelled images", list(L.LABEL_COUNTS), default=list(L.LABEL_COUNTS),
                            key=key(lid, "counts"))
    n_runs = 2 * len(counts)
    st.caption(f"{n_runs} runs x {seconds:.0f} s, plus a few seconds of setup each: about "
               f"{n_runs * (seconds + 4) / 60:.1f} min on a laptop CPU (more the first time: the small set is "
               "simulated once).")
    if st.button("Train the runs", key=key(lid, "run"), type="primary", disabled=not counts):
        def job(cb):
            ls = ws.lesson_set(progress=lambda f, t="": cb(0.1 * f, t))
            mdl = ensure_model(ws, lambda f, t="": cb(0.1 + 0.2 * f, t)) if model is None else model
            lo = 0.3 if model is None else 0.1
            return L.run(mdl.ref, ls, workdir(), sorted(counts), seconds, mdl.label,
                         progress=lambda f, t="": cb(lo + (1 - lo) * f, t))

        res = run_guarded(lid, "Fine-tuning from scratch and from the pretrained base", job)
        if res is not None:
            st.session_state[key(lid, "result")] = res
    res = st.session_state.get(key(lid, "result"))
    if res is not None:
        st.plotly_chart(F.lesson_curves(res.curves, f"Validation F1 while training (base: {res.base_label})",
                                 group=lambda c: c.n_labels), key=key(lid, "curves"))
        st.dataframe(pd.DataFrame([{"run": c.label, "labelled images": c.n_labels, "best F1": round(c.best_f1, 3),
                                    "validations": len(c.val_f1), "steps": c.steps[-1] if c.steps else 0,
                                    "seconds": round(c.wall_s, 1)} for c in res.curves]),
                     hide_index=True, key=key(lid, "table"))
        show_findings(L.findings(res))
    question(lid, L, L.answer(res) if res is not None else None)


# ------------------------------------------------------------------------------------------------------- lesson 4
@st.cache_data(show_spinner=False)
def _counts_without_weights(strategies: tuple[str, ...]) -> dict:
    """Parameter counts of the default architecture (weights do not change the counts)."""
    from types import SimpleNamespace

    from temzoo.lessons.layers import parameter_counts
    from temzoo.zoo.checkpoint import ModelSpec

    return parameter_counts(SimpleNamespace(model=ModelSpec().build()), strategies)


def lesson_layers() -> None:
    import pandas as pd

    from temzoo import figures as F
    from temzoo.lessons import layers as L

    lid = "layers"
    ws, model = lesson_start(L.INTRO)
    c1, c2, c3 = st.columns(3)
    with c1:
        seconds = _training_inputs(lid, L.DEFAULT_SECONDS)
    n_labels = c2.select_slider("Labelled images", [1, 2, 4], value=L.DEFAULT_LABELS, key=key(lid, "labels"))
    strategies = c3.multiselect("Strategies", list(L.STRATEGIES), default=list(L.STRATEGIES), key=key(lid, "strats"))
    if not strategies:
        st.info("Pick at least one strategy.")
    else:
        ck = try_checkpoint(model)
        counts = L.parameter_counts(ck, strategies) if ck is not None else _counts_without_weights(tuple(strategies))
        a, b = st.columns([3, 2])
        a.plotly_chart(F.lesson_parameters(counts), key=key(lid, "params"))
        b.dataframe(pd.DataFrame([{"strategy": s, "trainable": c["trainable"], "of": c["total"],
                                   "share": f"{100 * c['fraction']:.0f} %"} for s, c in counts.items()]),
                    hide_index=True, key=key(lid, "ptable"))
    st.caption(f"{len(strategies)} runs x {seconds:.0f} s: about {len(strategies) * (seconds + 4) / 60:.1f} min.")
    if st.button("Train the runs", key=key(lid, "run"), type="primary", disabled=not strategies):
        def job(cb):
            ls = ws.lesson_set(progress=lambda f, t="": cb(0.1 * f, t))
            mdl = ensure_model(ws, lambda f, t="": cb(0.1 + 0.2 * f, t)) if model is None else model
            lo = 0.3 if model is None else 0.1
            return L.run(checkpoint(mdl), mdl.ref, ls, workdir(), list(strategies), int(n_labels), seconds,
                         mdl.label, progress=lambda f, t="": cb(lo + (1 - lo) * f, t))

        res = run_guarded(lid, "Fine-tuning with four strategies", job)
        if res is not None:
            st.session_state[key(lid, "result")] = res
    res = st.session_state.get(key(lid, "result"))
    if res is not None:
        st.plotly_chart(F.lesson_curves(res.curves, f"Validation F1 while training ({res.n_labels} labelled image(s), "
                                             f"base: {res.base_label})"), key=key(lid, "curves"))
        show_findings(L.findings(res))
    question(lid, L, L.answer(res) if res is not None else None)


# ------------------------------------------------------------------------------------------------------- lesson 5
def lesson_trust() -> None:
    from temzoo import figures as F
    from temzoo.lessons import trust as L

    lid = "trust"
    ws, model = lesson_start(L.INTRO)
    if st.button("Measure the calibration (about 10 s)", key=key(lid, "run"), type="primary"):
        def job(cb):
            ls = ws.lesson_set(progress=lambda f, t="": cb(0.2 * f, t))
            mdl = ensure_model(ws, lambda f, t="": cb(0.2 + 0.4 * f, t)) if model is None else model
            lo = 0.6 if model is None else 0.2
            return L.run(checkpoint(mdl), ls, mdl.label, progress=lambda f, t="": cb(lo + (1 - lo) * f, t))

        res = run_guarded(lid, "Calibration, uncertainty and a wrong label", job)
        if res is not None:
            st.session_state[key(lid, "result")] = res
            st.session_state.pop(key(lid, "reaction"), None)
    res = st.session_state.get(key(lid, "result"))
    reaction = st.session_state.get(key(lid, "reaction"))
    if res is not None:
        m = st.columns(4)
        m[0].metric("Temperature", f"{res.temperature:.2f}")
        m[1].metric("ECE before", f"{res.ece_before:.3f}")
        m[2].metric("ECE after", f"{res.ece_after:.3f}", delta=f"{res.ece_after - res.ece_before:+.3f}",
                    delta_color="inverse")
        m[3].metric("Errors among uncertain pixels", f"{100 * res.error_rate_uncertain:.0f} %")
        a, b = st.columns(2)
        a.plotly_chart(F.lesson_reliability(res.reliability_before, res.reliability_after, res.temperature),
                       key=key(lid, "rel"))
        errors = ((res.probability >= 0.5) != res.truth).astype(float)
        b.plotly_chart(F.lesson_heat(res.confidence, res.pixel_size_nm, "Confidence (white: where the model is wrong)",
                              zmin=0.5, colorscale="Cividis", contour=errors), key=key(lid, "conf"))
        st.subheader("A label with a deliberate error")
        st.markdown("One particle (outlined) was erased from this image's label. The confidence map does not change "
                    "-- the model never sees labels -- but the per-pixel loss against the label does.")
        a, b = st.columns(2)
        a.plotly_chart(F.lesson_heat(res.wrong_label.astype(float), res.pixel_size_nm,
                              "The wrong label (white: particle; orange: erased)",
                              colorscale=[[0, "black"], [1, "white"]], contour=res.error_region,
                              contour_color="orange"), key=key(lid, "wrong"))
        b.plotly_chart(F.lesson_heat(res.loss_map, res.pixel_size_nm, "Loss against the wrong label (nats)", zmin=0.0,
                              zmax=float(max(1.0, res.loss_map.max())), colorscale="Magma",
                              contour=res.error_region), key=key(lid, "loss"))
        secs = st.slider("Seconds of fine-tuning per label", 5, 30, 15, key=key(lid, "seconds"))
        if st.button(f"Fine-tune on the right and on the wrong label (2 x {secs} s)", key=key(lid, "react")):
            def job(cb):
                mdl = ws.find_model()
                if mdl is None:
                    raise TemzooError("the lesson model is gone; run the measurement again")
                return L.react(mdl.ref, ws.lesson_set(), res, workdir(), float(secs), progress=cb)

            reaction = run_guarded(lid, "Fine-tuning on the right and on the wrong label", job)
            if reaction is not None:
                st.session_state[key(lid, "reaction")] = reaction
        if reaction is not None:
            a, b = st.columns(2)
            a.plotly_chart(F.lesson_heat(reaction.confidence_map_right, res.pixel_size_nm,
                                  "Confidence after training on the right label", zmin=0.5, colorscale="Cividis",
                                  contour=res.error_region), key=key(lid, "cright"))
            b.plotly_chart(F.lesson_heat(reaction.confidence_map_wrong, res.pixel_size_nm,
                                  "Confidence after training on the wrong label", zmin=0.5, colorscale="Cividis",
                                  contour=res.error_region), key=key(lid, "cwrong"))
        show_findings(L.findings(res, reaction))
    question(lid, L, L.answer(res, reaction) if res is not None else None)


def overview() -> None:
    """What each lesson does and how long it takes; which model the lessons will use."""
    import pandas as pd

    rows = []
    for info in LESSONS:
        mod = lesson_module(info.id)
        rows.append({"lesson": mod.TITLE, "minutes (laptop CPU)": info.minutes,
                     "question": mod.QUESTION.split("?")[0] + "?"})
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="teach_overview_table")
    st.markdown("Pick a lesson above. Each has a short text, an experiment you run, a plot to read, a question "
                "with its answer behind **Show the answer**, and a **Reset** button. The first lesson you open "
                "simulates its data once (seconds); after that everything is cached.")
    model_caption(workspace().find_model())


RENDER = {
    "dose-defocus": lesson_dose_defocus,
    "fringes": lesson_fringes,
    "labels": lesson_label_count,
    "layers": lesson_layers,
    "trust": lesson_trust,
}


def render(lesson_id: str) -> None:
    """Title, the lesson itself, and its reset button."""
    info = next(x for x in LESSONS if x.id == lesson_id)
    mod = lesson_module(lesson_id)
    st.header(mod.TITLE)
    st.caption(f"About {info.minutes:g} min on a laptop CPU, offline.")
    RENDER[lesson_id]()
    st.divider()
    reset_button(lesson_id)
