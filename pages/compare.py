"""Compare page: several strategies (and 1/2/4 labelled images) on the same validation split, side by side.

Each run is an ordinary background job (queued one at a time); the table and curves refresh while any runs.
"""

from __future__ import annotations

import streamlit as st

from temzoo import figures
from temzoo.errors import TemzooError
from temzoo.train import comparison
from temzoo.train.config import TrainConfig
from ui import training_form as uj
from ui import session
from ui.routing import through_app

through_app(__file__)

CMP_KEY = "cmp_current"

st.title("Compare strategies")
st.caption("Which fine-tuning strategy learns your images fastest, and how many labelled images does it need? "
           "Every run validates on the same held-out images.")
root = session.session_dir()

with st.expander("New comparison", expanded=not comparison.list_comparisons(root)):
    folder, set_px = uj.set_picker("cmp")
    base = uj.base_picker("cmp", set_px, folder)
    strategies = uj.strategy_picker("cmp", multi=True)
    sizes = st.multiselect("Labelled training images per run", [1, 2, 4, 8, 16], default=[1, 2, 4], key="cmp_sizes",
                           help="Each size trains every strategy on that many images (validation images stay fixed).")
    opts = uj.budget_inputs("cmp", base, validation=False)
    opts["pixel_size_nm"] = opts["pixel_size_nm"] or set_px
    cfg = TrainConfig(images=str(folder / "images") if folder else "", masks=str(folder / "masks") if folder else None,
                      base=base, **opts)
    n_runs = comparison.planned_runs(folder, strategies, sizes or None, cfg.val_fraction) if folder else 0
    st.caption(uj.comparison_time(n_runs, cfg.minutes, cfg.epochs), help="Runs wait in one queue (one device).")
    if st.button("Start comparison", type="primary", disabled=folder is None, key="cmp_start"):
        try:
            rec = comparison.submit_comparison(cfg.validate(), strategies, sizes or None, root)
            st.session_state[CMP_KEY] = rec["id"]
            st.toast(f"{len(rec['runs'])} runs queued")
        except TemzooError as err:
            st.error(str(err))

records = {r["id"]: r for r in comparison.list_comparisons(root)}
if not records:
    st.info("No comparisons yet: choose a labelled set and strategies above.")
    st.stop()
if st.session_state.get(CMP_KEY) not in records:
    st.session_state[CMP_KEY] = next(iter(records))
cid = st.selectbox("Comparison", list(records), key=CMP_KEY,
                   format_func=lambda i: f"{records[i]['name']} {i} · {len(records[i]['runs'])} runs")
record = records[cid]


def _view(was_active: bool) -> None:
    from temzoo.train import jobs

    rows = comparison.table(record)
    active = any(r["state"] in jobs.ACTIVE for r in rows)
    if was_active and not active:
        st.rerun()
    done = sum(r["state"] == "done" for r in rows)
    st.progress(done / max(len(rows), 1), text=f"{done} of {len(rows)} runs finished")
    st.dataframe(
        [{"strategy": r["strategy"], "labelled images": r["n_images"], "state": r["state"],
          "best val F1": r.get("best_val_f1"), "best val IoU": r.get("best_val_iou"), "epochs": r.get("epochs"),
          "seconds": r.get("seconds"), "seconds to best": r.get("seconds_to_best"),
          "result": "base kept (its F1)" if r.get("base_kept") else ("fine-tuned" if r["state"] == "done" else "")}
         for r in rows],
        hide_index=True, width="stretch",
    )
    scored = [r for r in rows if isinstance(r.get("best_val_f1"), (int, float))]
    if scored:
        st.caption("Best validation F1: " + " · ".join(
            f"{r['strategy']} ({r['n_images']} img) {r['best_val_f1']:.3f}" + (" (base kept)" if r["base_kept"] else "")
            for r in sorted(scored, key=lambda r: -r["best_val_f1"])))
    runs = {f"{run['strategy']}/{run['n_images']}": jobs.read_metrics(run["job"]) for run in record["runs"]}
    runs = {k: v for k, v in runs.items() if v}
    if runs:
        st.plotly_chart(figures.metrics_figure(runs, x="seconds"), width="stretch", key=f"cmp_curves_{cid}")
    f1 = [r for r in rows if isinstance(r.get("best_val_f1"), (int, float))]
    if len({r["n_images"] for r in f1}) > 1:
        st.plotly_chart(figures.label_count_figure(f1), width="stretch", key=f"cmp_sizes_{cid}")
    for r in rows:
        if r["state"] == "failed" and r.get("error"):
            st.error(f"{r['strategy']} / {r['n_images']} images: {r['error']}")
    st.caption("The runs' models stay in this comparison's folder, not in your zoo.")
    if not active and any(r["state"] == "done" for r in rows):
        c1, c2 = st.columns([2, 1])
        name = c1.text_input("Name of the winner in your zoo", key=f"cmp_winner_name_{cid}",
                             placeholder="default: compare-<strategy>-<n>img")
        if c2.button("Save the winner to your zoo", key=f"cmp_save_{cid}"):
            try:
                dest = comparison.save_winner(record, name.strip() or None)
                st.success(f"Saved the best run (highest validation F1) to your zoo: {dest.name}")
            except TemzooError as err:
                st.error(str(err))
    if active and st.button("Cancel remaining runs", key=f"cmp_cancel_{cid}"):
        for run in record["runs"]:
            jobs.cancel(run["job"])


def _any_active() -> bool:
    from temzoo.train import jobs

    try:
        return any(jobs.describe(run["job"]).active for run in record["runs"])
    except TemzooError:
        return False


was_active = _any_active()
st.fragment(run_every=2.0 if was_active else None)(_view)(was_active)
