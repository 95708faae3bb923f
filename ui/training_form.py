"""The training form: labelled-set, base and strategy pickers and budget inputs of the Fine-tune and Compare pages."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from temzoo.errors import TemzooError
from temzoo.train import labelset
from temzoo.train.config import RECOMMENDED_STRATEGY, SIZES, STRATEGIES, VALIDATIONS, TrainConfig
from ui import session

OTHER = "Another folder…"
TIMM = "ImageNet encoder (timm)…"
TILE_SIZES = [64, 128, 192, 256, 384, 512]
GPU_AUTOSIZE = "On a GPU this is a floor: training raises it to what free GPU memory holds (256 px tiles)."
VALIDATION_HELP = {"regions": "every image trains; a band of each validates",
                   "image": "whole images (a quarter of them) validate and never train",
                   "none": "every pixel trains for the whole budget; no selection"}
DOWNSAMPLES = [None, 1.0, 2.0, 4.0]
DOWNSAMPLE_HELP = {None: "auto (the base's own; native from scratch)", 1.0: "native", 2.0: "half (2x shrink)",
                   4.0: "quarter (4x shrink)"}
SIZE_HELP = {"auto": "auto (large on a GPU, small on a CPU)", "small": "small (0.88 M parameters)",
             "large": "large (full-depth ResNet-18 U-Net, 14.3 M)"}


def set_picker(key: str) -> tuple[Path | None, float | None]:
    """Choose the training set: this session's labels, a shared labelled set, or any images/+masks/ folder.
    Returns (folder or None, the set's recorded pixel size or None)."""
    own = session.labels_dir()
    n_own = len(labelset.list_pairs(own))
    options = {f"This session's labels ({n_own})": own, **labelset.find_sets()}
    chosen = st.session_state.get(session.LABEL_SET)
    names = list(options) + [OTHER]
    index = next((i for i, n in enumerate(names[:-1]) if str(options[n]) == str(chosen)), 0)
    pick = st.selectbox("Labelled set", names, index=index, key=f"{key}_set")
    if pick == OTHER:
        text = st.text_input("Folder with images/ and masks/", key=f"{key}_set_path").strip()
        if not text:
            return None, None
        folder = Path(text).expanduser()
    else:
        folder = options[pick]
    pairs = labelset.list_pairs(folder)
    if not pairs:
        st.warning(f"No image/mask pairs in {folder}: label some images on the Label page, or choose another set.")
        return None, None
    px = labelset.common_pixel_size(pairs)
    st.caption(f"{len(pairs)} labelled images · pixel size {f'{px:.4g} nm' if px else 'not recorded'} · {folder}")
    return folder, px


@st.cache_data(ttl=30, show_spinner=False)
def _zoo_ids() -> tuple[list[tuple[str, str]], list[str]]:
    """(ref, label) of the usable zoo models, and one line per damaged folder (skipped, with its reason)."""
    from temzoo.zoo import list_models

    models = list_models(hub=False, include_damaged=True)
    good = [(m.ref, f"{m.id} ({m.source}{', default' if m.default_base else ''})") for m in models if not m.damaged]
    return good, [f"{m.id} ({m.source}): {m.damaged}" for m in models if m.damaged]


def base_picker(key: str, pixel_size_nm: float | None = None, folder: Path | None = None) -> str:
    """The model to start from: a zoo entry, scratch, or a checkpoint folder path; preselects the base the transfer
    benchmark says wins for this kind of image (temzoo.zoo.registry.recommend_base) and says why in one line."""
    from temzoo.zoo.registry import recommend_base

    try:
        zoo, damaged = _zoo_ids()
        if damaged:
            st.warning(f"{len(damaged)} model folder(s) damaged and skipped: " + "; ".join(damaged))
        rec = recommend_base(pixel_size_nm, len(labelset.list_pairs(folder)) if folder else None)
    except TemzooError as err:
        st.warning(f"The zoo could not be listed ({err}); give a checkpoint folder instead.")
        zoo, rec = [], None
    from temzoo.zoo.network import online

    labels = {ref: label for ref, label in zoo}
    # Natural-image encoders come from the Hub (temzoo.zoo.timm_base): offered only when it can be reached.
    options = [ref for ref, _ in zoo] + ["scratch"] + ([TIMM] if online() else []) + [OTHER]
    want = rec.base if rec else "scratch"
    index = options.index(want) if want in options else 0
    pick = st.selectbox("Start from", options, index=index, key=f"{key}_base",
                        format_func=lambda r: labels.get(r, "scratch (random weights)" if r == "scratch" else r),
                        help="Preselected: the base that won the leave-one-set-out transfer benchmark for images "
                             "like these (bench/bench_transfer.py, docs/PRETRAINING_STUDY.md).")
    if rec:
        st.caption(f"Recommended: **{rec.base}**, because {rec.reason}.")
    if pick == OTHER:
        return st.text_input("Checkpoint folder", key=f"{key}_base_path").strip() or "scratch"
    if pick == TIMM:
        name = st.text_input("timm model", "timm:resnet18", key=f"{key}_base_timm",
                             help="An ImageNet-pretrained timm encoder (Ochoa et al.) downloaded from the Hugging Face "
                                  "Hub, e.g. timm:resnet18 or timm:resnet34; its first convolution is summed to one "
                                  "channel and the U-Net decoder starts fresh.").strip()
        return name if name.startswith("timm:") or not name else f"timm:{name}"
    return pick


def strategy_picker(key: str, multi: bool = False):
    if multi:
        return st.multiselect("Strategies", STRATEGIES, default=[RECOMMENDED_STRATEGY, "freeze-encoder", "l2sp"],
                              key=f"{key}_strategies")
    return st.selectbox("Strategy", STRATEGIES, index=STRATEGIES.index(RECOMMENDED_STRATEGY), key=f"{key}_strategy")


def budget_inputs(key: str, base: str | None = None, validation: bool = True) -> dict:
    """Budget and the few settings worth exposing; returns TrainConfig keyword arguments. The network size applies
    only when ``base`` is scratch (None: not known here); a base brings its own network. ``validation=False`` hides
    the model-selection choice (the Compare page pins its validation images for every run)."""
    c1, c2 = st.columns(2)
    kind = c1.radio("Budget", ["minutes", "epochs"], horizontal=True, key=f"{key}_budget_kind")
    if kind == "minutes":
        budget = {"minutes": c2.number_input("Minutes", 0.1, 600.0, 2.0, 0.5, key=f"{key}_minutes")}
    else:
        budget = {"epochs": int(c2.number_input("Epochs", 1, 1000, 10, 1, key=f"{key}_epochs"))}
    # TrainConfig's own defaults are the measured ones (docs/FINETUNING.md): the form repeats no number.
    with st.expander("Advanced"):
        a1, a2, a3 = st.columns(3)
        budget["batch_size"] = int(a1.number_input("Batch size", 1, 256, TrainConfig.batch_size, key=f"{key}_batch",
                                                   help=GPU_AUTOSIZE))
        budget["tile_size"] = int(a2.select_slider("Tile size", TILE_SIZES, TrainConfig.tile_size, key=f"{key}_tile",
                                                   help=GPU_AUTOSIZE))
        budget["lr"] = float(a3.number_input("Learning rate", 1e-6, 1.0, TrainConfig.lr, format="%.0e",
                                             key=f"{key}_lr"))
        b1, b2, b3 = st.columns(3)
        budget["seed"] = int(b1.number_input("Seed", 0, 2**31 - 1, TrainConfig.seed, key=f"{key}_seed"))
        budget["device"] = b2.selectbox("Device", ["auto", "cuda", "cpu"], key=f"{key}_device")
        px = b3.number_input("Pixel size (nm, 0 = from files)", 0.0, 1000.0, 0.0, format="%.4f", key=f"{key}_px")
        budget["pixel_size_nm"] = px or None
        sizes = ["auto", *SIZES]
        size = st.selectbox("Network size", sizes, key=f"{key}_size", format_func=SIZE_HELP.get,
                            disabled=base not in (None, "scratch"),
                            help="For training from scratch (docs/ZOO_SIZES.md); a base brings its own network.")
        budget["size"] = None if size == "auto" or base not in (None, "scratch") else size
        budget["downsample"] = st.selectbox(
            "Working resolution", DOWNSAMPLES, key=f"{key}_downsample", format_func=DOWNSAMPLE_HELP.get,
            help="Shrink the images before training (prediction then shrinks new images alike). Large bright-field "
                 "images whose features span many pixels train better at half resolution (docs/FINETUNING.md). "
                 "A calibrated base near the images' scale works at its own pixel size whatever is chosen here.")
        if validation:
            budget["validation"] = st.selectbox("Validation", VALIDATIONS, VALIDATIONS.index(TrainConfig.validation),
                                                key=f"{key}_validation", format_func=VALIDATION_HELP.get,
                                                help="What chooses the epoch that is kept (docs/FINETUNING.md, "
                                                     "Split).")
    return budget


def comparison_time(n_runs: int, minutes: float | None, epochs: int | None) -> str:
    """The line shown before a comparison starts: how many runs, and how long they take together at most."""
    if not n_runs:
        return "No runs: choose strategies and sizes the labelled set can hold."
    runs = f"{n_runs} run{'s' if n_runs > 1 else ''}, one after another"
    if minutes:
        return f"{runs}: about {fmt_seconds(n_runs * minutes * 60)} in all ({minutes:g} min each)."
    return f"{runs}, {epochs} epochs each: the time per epoch shows once the first run has finished one."


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    s = int(round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def ago(t: float | None) -> str:
    return "–" if not t else time.strftime("%H:%M:%S", time.localtime(t))
