"""Label page: draw masks on the current micrograph, or upload masks / COCO / YOLO-seg labels; see the labelled set.

Labels go to this session's own folder (images/ + masks/ PNG pairs), which the Fine-tune and Compare pages train on.
"""

from __future__ import annotations

import streamlit as st

from temzoo.errors import TemzooError
from temzoo.train import labelset
from ui import label as ul
from ui import segment as seg
from ui import session, state
from ui.routing import through_app

through_app(__file__)

CANVAS_N = "label_canvas_n"  # bumped after each save so the next drawing starts on a fresh canvas
PREDICTION = "Current model's prediction"

st.title("Label")
labels = session.labels_dir()
draw_tab, upload_tab, set_tab = st.tabs(["Draw", "Upload", "Labelled set"])

with draw_tab:
    mg = state.get(state.MICROGRAPH)
    if mg is None:
        st.info("Load a micrograph on the Load page to draw on it, or upload image/mask pairs in the Upload tab.")
    else:
        fi = min(int(state.get(state.FRAME) or 0), mg.n_frames - 1)
        frame = mg.frame(fi)
        h, w = frame.shape[:2]
        dw, dh = ul.display_size((h, w))
        c1, c2, c3 = st.columns([2, 1, 2])
        tool = c1.radio("Tool", ["Brush", "Eraser", "Polygon", "Rectangle"], horizontal=True, key="label_tool",
                        help="Red adds, blue (eraser) removes. Close a polygon by clicking its first point again.")
        size = c2.slider("Brush size", 1, 80, 14, key="label_brush")
        model_ref = state.get(state.MODEL_ID) or seg.default_model()
        starts = ["Empty mask"] + ([PREDICTION] if model_ref else []) + [
            "Threshold: bright features", "Threshold: dark features"]
        start = c3.selectbox("Start from", starts, key="label_start",
                             help="An automatic starting mask to correct with brush and eraser.")
        thr = None
        if start == PREDICTION:
            thr = st.slider("Prediction threshold", 0.05, 0.95, 0.5, 0.05, key="label_pred_threshold",
                            help=f"Pixels where {model_ref} gives the foreground at least this probability start "
                                 "labelled; lower it to start with more, raise it for less.")
        z1, z2, z3 = st.columns([1, 2, 2])
        zoom = int(z1.select_slider("Zoom", [1, 2, 4, 8], 1, key="label_zoom",
                                    help="Draw thin boundaries zoomed in; strokes from every view are kept."))
        cx = z2.slider("Pan left-right", 0.0, 1.0, 0.5, 0.05, key="label_pan_x", disabled=zoom == 1)
        cy = z3.slider("Pan up-down", 0.0, 1.0, 0.5, 0.05, key="label_pan_y", disabled=zoom == 1)
        view = (zoom, cx, cy) if zoom > 1 else (1, 0.5, 0.5)

        def _start():
            if start == PREDICTION:
                try:
                    pred = ul.prediction(model_ref, mg, fi)
                    return labelset.prediction_mask(pred.probability, thr, (h, w))
                except TemzooError as err:
                    st.error(str(err))
                    return None
            return None if start == "Empty mask" else labelset.threshold_mask(frame, invert="dark" in start)

        start_id = (seg.frame_key(mg, fi), start, thr, model_ref,
                    st.session_state.get(CANVAS_N, 0))
        work, gen = ul.working_mask(start_id, _start, (h, w), view)
        y0, y1, x0, x1 = ul.view_box((h, w), *view)
        from streamlit_drawable_canvas import st_canvas

        st.caption("Red strokes and shapes add to the mask, blue (eraser) removes; the last stroke wins. "
                   "The toolbar above the image has undo, redo and clear."
                   + (f" Showing x {x0}-{x1}, y {y0}-{y1} of {w}x{h} px at {zoom}x." if zoom > 1 else ""))
        st.write("")  # room for the canvas toolbar, which floats above the image

        color = ul.ERASE_RGBA if tool == "Eraser" else ul.LABEL_RGBA
        result = st_canvas(
            fill_color=color, stroke_color=color, stroke_width=size if tool in ("Brush", "Eraser") else 2,
            background_image=ul.overlay(frame[y0:y1, x0:x1], work[y0:y1, x0:x1], (dw, dh)), width=dw, height=dh,
            drawing_mode={"Brush": "freedraw", "Eraser": "freedraw", "Polygon": "polygon", "Rectangle": "rect"}[tool],
            return_image_data=True, key=f"label_canvas_{gen}",
        )
        mask = work.copy()
        try:
            mask[y0:y1, x0:x1] = labelset.strokes_to_mask(result.image_data, (y1 - y0, x1 - x0), work[y0:y1, x0:x1])
        except TemzooError as err:
            st.error(str(err))
        ul.remember_mask(mask)
        px = f"{mg.pixel_size_nm:.4g} nm/px" if mg.calibrated else "no pixel size"
        st.caption(f"Mask: {mask.mean() * 100:.1f} % of {w}x{h} pixels labelled · {px}")
        name = st.text_input("Name", value=labelset.safe_name(mg.title or mg.source or "image"), key="label_name")
        if st.button("Add to labelled set", type="primary", key="label_save",
                     disabled=not mask.any()):
            try:
                pair = labelset.add_pair(labels, frame, mask, name, mg.pixel_size_nm if mg.calibrated else None,
                                         source=str(mg.source))
                st.session_state[CANVAS_N] = st.session_state.get(CANVAS_N, 0) + 1
                st.success(f"Saved {pair.name} ({len(labelset.list_pairs(labels))} labelled images in this session)")
            except TemzooError as err:
                st.error(str(err))

with upload_tab:
    st.markdown("Upload images with their labels, matched by file name: mask images (0/255 or class index), "
                "a COCO instances `.json`, or YOLO-seg `.txt` files.")
    imgs = st.file_uploader("Images", accept_multiple_files=True, key="label_up_images",
                            type=["png", "jpg", "jpeg", "tif", "tiff", "dm3", "dm4"])
    labs = st.file_uploader("Labels", accept_multiple_files=True, key="label_up_labels",
                            type=["png", "jpg", "jpeg", "tif", "tiff", "json", "txt"])
    px_in = st.number_input("Pixel size (nm, 0 = from the files)", 0.0, 1000.0, 0.0, format="%.4f", key="label_up_px")
    if st.button("Add uploads", disabled=not imgs or not labs, key="label_up_add"):
        added, problems = labelset.import_uploads(
            labels, {f.name: f.getvalue() for f in imgs}, {f.name: f.getvalue() for f in labs}, px_in or None)
        if added:
            st.success(f"Added {len(added)} labelled images: {', '.join(p.name for p in added)}")
        for msg in problems:
            st.error(msg)

with set_tab:
    pairs = labelset.list_pairs(labels)
    px = labelset.common_pixel_size(pairs)
    st.markdown(f"**{len(pairs)}** labelled images in this session · pixel size "
                f"{f'{px:.4g} nm' if px else 'not recorded' if pairs else '–'}")
    cols = st.columns(4)
    for i, p in enumerate(pairs):
        with cols[i % 4]:
            try:
                st.image(ul.thumbnail(str(p.image), str(p.mask), p.mask.stat().st_mtime), caption=p.name)
            except (TemzooError, OSError) as err:
                st.warning(f"{p.name}: {err}")
            if st.button("Remove", key=f"label_rm_{p.name}"):
                labelset.remove_pair(labels, p.name)
                st.rerun()
    sets = {f"This session's labels ({len(pairs)})": labels, **labelset.find_sets()}
    current = st.session_state.get(session.LABEL_SET)
    names = list(sets)
    idx = next((i for i, n in enumerate(names) if str(sets[n]) == str(current)), 0)
    pick = st.selectbox("Train on (Fine-tune and Compare pages)", names, index=idx, key="label_train_set")
    st.session_state[session.LABEL_SET] = str(sets[pick])
