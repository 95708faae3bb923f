"""Segment page: the current micrograph through the current model -- mask, confidence and importance side by side
(linked zoom), with the numbers, the particle table, downloads, and supervised metrics when a mask is uploaded."""

from __future__ import annotations

import streamlit as st

from temzoo import metrics as tzm
from temzoo import figures
from temzoo.errors import TemzooError
from temzoo.export import mime
from temzoo.explain import Band, BandImportance, receptive_field, receptive_field_vs_lattice
from temzoo.predict import PredictOptions
from ui import segment as seg
from ui import session, state
from ui.routing import through_app

through_app(__file__)

st.title("Segment")

mg = state.get(state.MICROGRAPH)
if mg is None:
    st.info("No micrograph yet: load one on the Load page first.")
    st.stop()

# ------------------------------------------------------------------------------------------------------------ model
current = state.get(state.MODEL_ID) or seg.default_model()
choices = seg.zoo_choices()
with st.expander("Model", expanded=current is None):
    options = list(dict.fromkeys(([current] if current else []) + choices))
    picked = st.selectbox("Zoo model", options, index=0 if options else None,
                          placeholder="no zoo model on disk", key="seg_model_pick") if options else None
    typed = st.text_input("... or a checkpoint folder / Hub repo id", key="seg_model_typed",
                          placeholder="/path/to/checkpoint or org/name").strip()
    model_ref = typed or picked
if not model_ref:
    st.info("No model chosen: pick one on the Zoo page (or type a checkpoint folder above).")
    st.stop()
if model_ref != state.get(state.MODEL_ID):
    session.use_model(model_ref)

try:
    ck = seg.load_checkpoint(model_ref)
except TemzooError as err:
    st.error(str(err))
    st.stop()

# ---------------------------------------------------------------------------------------------------------- options
frame = int(state.get(state.FRAME, 0) or 0)
if mg.n_frames > 1:
    frame = st.slider("Frame", 0, mg.n_frames - 1, min(frame, mg.n_frames - 1))
    state.set(state.FRAME, frame)
c1, c2, c3, c4 = st.columns([1, 1, 2, 1])
tta = c1.toggle("TTA (x8 flips)", key="seg_tta", help="Average over the 8 rotations/flips; adds a spread map.")
mc = c2.number_input("MC-dropout passes", 0, 32, 0, key="seg_mc",
                     help="Monte-Carlo dropout before the head; adds mutual information (model uncertainty).")
others = [m for m in choices if m != model_ref]
ensemble = c3.multiselect("Ensemble with", others, key="seg_ensemble",
                          help="Average with other zoo models; adds their disagreement.") if others else []
threshold = c4.slider("Threshold", 0.05, 0.95, 0.5, 0.05, key="seg_threshold")

kind = tzm.class_kind(ck.meta)  # objects (particles, loops) or a network (boundaries): the numbers follow it
include_edge = st.toggle(
    "Count sizes of objects cut by the image edge" if kind == "objects" else "Count sizes of grains cut by the edge",
    value=False, key="seg_include_edge",
    help="Objects touching the border are only partly in the field of view: their sizes are too small. They are "
         "flagged in the table (touches_edge) and left out of the size statistics unless this is on.")
opts = PredictOptions(tta=tta, mc_dropout=int(mc), threshold=float(threshold))
fkey = seg.frame_key(mg, frame)
pkey = ("predict", fkey, model_ref, tuple(ensemble), seg.options_key(opts))


def _predict():
    from temzoo.predict import ensemble_predict
    from temzoo.predict import predict

    bar, cb = seg.progress_bar("Segmenting ...")
    try:
        if ensemble:
            return ensemble_predict([ck] + [seg.load_checkpoint(r) for r in ensemble], mg, opts, cb, frame)
        return predict(ck, mg, opts, cb, frame=frame)
    finally:
        bar.empty()


try:
    pred = seg.cached(pkey, _predict)
    domain = seg.cached(("domain", fkey, model_ref), lambda: tzm.domain_shift(ck, mg, frame))
    table = seg.cached(("table", pkey, kind), lambda: tzm.region_table_for(pred, kind))
    summary = seg.cached(("summary", pkey, kind, include_edge), lambda: tzm.unsupervised_metrics(
        pred, kind=kind, include_edge=include_edge, table=table))
except TemzooError as err:
    st.error(str(err))
    st.stop()

for w in dict.fromkeys(pred.warnings + domain.warnings):
    st.warning(w)

# ----------------------------------------------------------------------------------------------------- importance
h, w = mg.shape
with st.expander("Feature importance", expanded=True):
    e1, e2 = st.columns([2, 3])
    method = e1.selectbox("Method", ["gradcam", "integrated-gradients", "occlusion", "fourier"], key="seg_method",
                          help="Attributions explain the mean foreground logit of the region; 'fourier' removes one "
                               "band of spatial periods at a time.")
    use_fg = e1.checkbox("Region = predicted foreground", value=True, key="seg_use_fg")
    b = e2.columns(4)
    y0 = b[0].number_input("top (px)", 0, h - 1, h // 4, key="seg_y0", disabled=use_fg)
    x0 = b[1].number_input("left (px)", 0, w - 1, w // 4, key="seg_x0", disabled=use_fg)
    y1 = b[2].number_input("bottom (px)", 1, h, max(y0 + 1, 3 * h // 4), key="seg_y1", disabled=use_fg)
    x1 = b[3].number_input("right (px)", 1, w, max(x0 + 1, 3 * w // 4), key="seg_x1", disabled=use_fg)
    box = None if use_fg else (int(y0), int(x0), int(y1), int(x1))
    ekey = ("explain", pkey, method, box)
    if st.button("Explain", key="seg_explain", type="primary"):
        def _explain():
            from temzoo.explain import explain

            with st.spinner(f"{method} ..."):
                return explain(ck, mg, method, region=box, frame=frame, prediction=pred)

        try:
            seg.cached(ekey, _explain)
        except TemzooError as err:
            st.error(str(err))
    expl = seg.cached_value(ekey)

# ------------------------------------------------------------------------------------------------------------ maps
conf_maps = ["confidence", "entropy"] + [k for k in pred.maps if k != "entropy"]
view = st.radio("Uncertainty map", conf_maps, horizontal=True, key="seg_conf_view")
window = tuple(expl.info["explained_px"]) if expl is not None and expl.info.get("window_note") else None
fig = figures.maps_figure(mg.frame(frame), pred, expl.importance if expl else None, box, confidence_map=view,
                          window=window)
st.plotly_chart(fig, key="seg_maps", config={"displaylogo": False})
if expl is not None:
    what = ("red/blue: raises/lowers the region's foreground score" if expl.method in
            ("integrated-gradients", "occlusion") else "brighter: more important")
    st.caption(f"{expl.method}: {expl.seconds:.1f} s; {what}. "
               + (expl.info.get("window_note") or "It covers the whole image."))

# --------------------------------------------------------------------------------------------------------- numbers
seg.summary_metrics(summary)
peaks = domain.stats.get("spectrum_peaks") or []
spacing = peaks[0] if (peaks and pred.resampled_to_nm) else None
st.caption(f"{pred.model_id}: {pred.seconds:.2f} s on {pred.info.get('device', 'cpu')}, "
           f"{pred.info.get('tiles', 1)} tile(s); {seg.scale_line(pred)}. " + seg.domain_line(domain)
           + receptive_field_vs_lattice(seg.cached(("rf", model_ref), lambda: receptive_field(ck)), spacing))

t1, t2 = st.columns([3, 2])
with t1:
    st.caption(("Grains enclosed by the predicted boundaries" if kind == "network" else "Particles")
               + f" ({'nm' if pred.pixel_size_nm else 'px: no pixel size'}); touches_edge: cut by the field of view.")
    st.dataframe(table, hide_index=True, height=300, key="seg_table")
with t2:
    sizes = tzm.interior_diameters(table, pred.pixel_size_nm, include_edge)
    st.plotly_chart(figures.histogram(sizes, "Grain sizes" if kind == "network" else "Sizes",
                                  f"equivalent diameter ({summary['size_unit']})"), key="seg_hist_size")
    sample = pred.confidence.ravel()[:: max(1, pred.confidence.size // 200_000)]
    st.plotly_chart(figures.histogram(sample, "Pixel confidence", "confidence"), key="seg_hist_conf")

if expl is not None and expl.method == "fourier":
    bd = expl.info["bands"]
    bi = BandImportance([Band(**b) for b in bd["bands"]], bd["unit"], bd["pixel_size"], bd["seconds"])
    st.plotly_chart(figures.bands_figure(bi), key="seg_bands")

# ------------------------------------------------------------------------------------------------------- downloads
st.subheader("Downloads")


def _downloads():
    from temzoo.export import build_bundle

    return build_bundle(pred, mg, frame, explanation=expl, table=table).files


files = seg.cached(("files", pkey, ekey if expl is not None else None), _downloads)
st.caption("Each file is named after the image; the CLI's `predict` writes the same bundle.")
for row in range(0, len(files), 5):
    names = list(files)[row:row + 5]
    for col, name in zip(st.columns(5), names):
        col.download_button(name, files[name], file_name=name, mime=mime(name), key=f"seg_dl_{name}")

# -------------------------------------------------------------------------------------------------- supervised
st.subheader("Compare with a mask")
up = st.file_uploader("Mask for this image (0/255 or class-index PNG/TIFF)", type=["png", "tif", "tiff", "bmp"],
                      key="seg_mask_upload")
if up is None:
    st.session_state.pop(seg.MASK_KEY, None)  # removed from the uploader: stop scoring against it
else:
    try:
        seg.read_uploaded_mask(up.getvalue(), up.name)
    except TemzooError as err:
        st.session_state.pop(seg.MASK_KEY, None)  # never show metrics of an earlier mask under this one's name
        st.error(str(err))
truth = st.session_state.get(seg.MASK_KEY)
if truth is not None:
    name, mask = truth
    try:
        from temzoo.confidence import apply_temperature, fit_temperature, reliability

        sup = seg.cached(("supervised", pkey, name, mask.shape, kind), lambda: tzm.supervised_metrics(
            pred.probability, mask, pred.pixel_size_nm, threshold, kind=kind))
        rel = seg.cached(("reliability", pkey, name), lambda: reliability(pred.probability, mask))
        seg.supervised_metrics_row(sup)
        st.plotly_chart(figures.size_comparison_figure(sup, summary["size_unit"]), key="seg_sizes_vs_human")
        r1, r2 = st.columns(2)
        r1.plotly_chart(figures.reliability_figure(rel), key="seg_reliability")
        with r2:
            t = seg.cached(("temperature", pkey, name), lambda: fit_temperature(pred.probability, mask))
            rel_t = reliability(apply_temperature(pred.probability, t), mask)
            st.metric("Fitted temperature", f"{t:.3f}", help="Divide logits by this to calibrate (Guo et al.)")
            st.metric("ECE after temperature scaling", f"{rel_t.ece:.3f}", delta=f"{rel_t.ece - rel.ece:+.3f}",
                      delta_color="inverse")
    except TemzooError as err:
        st.error(str(err))
