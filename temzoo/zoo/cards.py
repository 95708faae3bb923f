"""Model cards (the checkpoint's ``README.md``) in the Hub's format, via ``huggingface_hub.ModelCard``.

The YAML header uses Hub keys (``library_name``, ``tags`` incl. ``temzoo`` and the task, ``datasets``, ``metrics``,
``base_model``, ``license``, ``model-index``); the body says what a microscopist needs before trusting the model:
intended use, training data, pixel size, acquisition conditions, how to load it, limitations and the method's citation.
Everything comes from ``temzoo.json`` (:class:`~temzoo.zoo.checkpoint.TemzooMeta`), chiefly its ``provenance``:

``base_model``, ``training_data``, ``data_hash``, ``datasets`` (Hub dataset ids), ``strategy``, ``metrics``
({name: value} on held-out data), ``eval_data``, ``acquisition``, ``pixel_size_range_nm``, ``limitations``,
``citation``, ``license``, ``versions``, ``created``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from temzoo.zoo.meta import CARD_FILE, CONFIG_FILE, ModelSpec, TemzooMeta, read_meta, spec_from_config

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

CITATIONS = {
    "unet": "O. Ronneberger, P. Fischer, T. Brox, *U-Net: Convolutional Networks for Biomedical Image Segmentation*, "
    "MICCAI 2015.",
    "segmentation": "L. Rangel DaCosta, K. Oill, M. Scott, *Strategies for effective transfer learning for HRTEM "
    "analysis with neural networks* (pretraining on simulated HRTEM, freeze-then-unfreeze fine-tuning).",
    "denoising": "H. Kazimi, S. Sandfeld, *Self-supervised pretraining on unlabelled TEM images by Poisson-noise "
    "denoising*, AI MSE 2023 (arXiv:2402.18286).",
    "masked": "Z. Xie, Z. Zhang, Y. Cao, Y. Lin, J. Bao, Z. Yao, Q. Dai, H. Hu, *SimMIM: A Simple Framework for Masked "
    "Image Modeling*, CVPR 2022 (arXiv:2111.09886).",
    "l2": "J. Ochoa, X. Xu, Y. Wang, *Improving U-Net Confidence on TEM Image Data with L2-Regularization, Transfer "
    "Learning, and Deep Fine-Tuning*, ICCV 2025 CV4MS (arXiv:2507.16779).",
}
PIPELINE_TAG = {"segmentation": "image-segmentation", "denoising": "image-to-image"}


def _hub_id(ref: Any) -> str | None:
    """``ref`` as a Hub repo id for the YAML header (zoo ids map through the registry), or None."""
    if not ref:
        return None
    ref = str(ref)
    if _REPO_ID.match(ref) and not Path(ref).exists():
        return ref
    try:
        from temzoo.zoo.registry import get_entry

        entry = get_entry(ref)
    except Exception:  # noqa: BLE001 - a broken registry must not stop a card from being written
        entry = None
    return entry.hub_repo if entry else None


def _metrics(prov: dict) -> dict[str, float]:
    out = {}
    for k, v in (prov.get("metrics") or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[str(k)] = float(v)
    return out


def _kind_line(kinds: list[str] | None) -> str:
    """The card's class-kind line (after the output line), empty when the kind is not recorded."""
    if not kinds:
        return ""
    what = ("network (boundaries or lines): scored by the grains it encloses (count, size distribution), never by "
            "object F1" if kinds[0] == "network" else
            "objects (particles, loops): counts, sizes, Feret diameters; objects cut by the image edge are left out "
            "of the sizes")
    return f"\n- Class kind: {what}"


def render_card(
    meta: TemzooMeta,
    spec: ModelSpec,
    *,
    model_id: str = "",
    repo_id: str | None = None,
    params: int | None = None,
    extra_tags: tuple[str, ...] = (),
    folder: str | Path | None = None,
) -> str:
    """The full ``README.md`` text (YAML header + markdown body) for a checkpoint; ``folder``: where it lies (a
    model in the user's zoo), which its load example then names."""
    from huggingface_hub import ModelCard

    prov = dict(meta.provenance or {})
    name = model_id or (repo_id.split("/")[-1] if repo_id else "temzoo model")
    metrics = _metrics(prov)
    eval_name = str(prov.get("eval_data") or prov.get("training_data") or "held-out images")
    data = _card_header(meta, prov, name, metrics, eval_name, extra_tags)
    lines = _card_description(meta, spec, prov, name, model_id, repo_id, params, folder)
    lines += _card_evaluation(meta, prov, metrics, eval_name)
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"
    return str(ModelCard(content))


def _card_header(meta: TemzooMeta, prov: dict, name: str, metrics: dict[str, float], eval_name: str,
                 extra_tags: tuple[str, ...]):
    """The card's YAML header (Hub keys) as ``ModelCardData``."""
    from huggingface_hub import EvalResult, ModelCardData

    task = meta.task
    base_ref = prov.get("base_model")
    base_hub = _hub_id(base_ref)
    datasets = [d for d in (prov.get("datasets") or []) if _REPO_ID.match(str(d))]
    eval_results = [
        EvalResult(
            task_type=PIPELINE_TAG.get(task, "image-segmentation"),
            dataset_type=datasets[0] if datasets else "custom",
            dataset_name=eval_name[:120],
            metric_type=k,
            metric_value=round(v, 4),
        )
        for k, v in metrics.items()
    ]
    tags = ["temzoo", task, "tem", "electron-microscopy", "segmentation-models-pytorch"]
    tags += [t for t in (*extra_tags, *(prov.get("tags") or [])) if t not in tags]
    return ModelCardData(
        library_name="segmentation-models-pytorch",
        license=str(prov.get("license") or "mit"),
        tags=tags,
        pipeline_tag=PIPELINE_TAG.get(task),
        datasets=datasets or None,
        metrics=sorted(metrics) or None,
        base_model=base_hub,
        model_name=name,
        eval_results=eval_results or None,
    )


def _card_description(meta: TemzooMeta, spec: ModelSpec, prov: dict, name: str, model_id: str,
                      repo_id: str | None, params: int | None, folder: str | Path | None = None) -> list[str]:
    """The body up to the evaluation: use, network, training data, pixel size, acquisition, how to load."""
    task = meta.task
    px = f"{meta.pixel_size_nm:g} nm/px" if meta.pixel_size_nm else "uncalibrated (no pixel size recorded)"
    if not meta.pixel_size_nm and meta.input_downsample != 1:
        px += f"; works at 1/{meta.input_downsample:g} of its training images' resolution (inputs are shrunk alike)"
    rng = prov.get("pixel_size_range_nm")
    px_range = (
        f"trained on images from {rng[0]:g} to {rng[1]:g} nm/px" if isinstance(rng, (list, tuple)) and len(rng) == 2
        else "trained at a single pixel size"
    )
    where = repo_id or (str(folder) if folder else f"zoo/{model_id}" if model_id else "path/to/folder")
    ref = model_id if folder and model_id else where  # a model in the user's zoo loads by its id
    masked = (prov.get("config") or {}).get("corruption") == "mask"
    classes = (", ".join(meta.class_names) if task == "segmentation"
               else f"one channel (the {'reconstructed' if masked else 'denoised'} image)")
    lines = [
        f"# {name}",
        "",
        meta.description or f"A temzoo {task} model for transmission electron micrographs.",
        "",
        "## Intended use",
        str(prov.get("intended_use") or (
            f"{task.capitalize()} of TEM/HRTEM micrographs like its training data, as a starting point for "
            "fine-tuning on a few labelled images of your own, or for first-pass analysis that a person checks."
            if task == "segmentation" else
            "A pretraining base: fine-tune it for segmentation on a few labelled images (it outputs an image, "
            "not a mask)."
        )),
        "",
        f"- Output: {classes}" + _kind_line(meta.class_kinds if task == "segmentation" else None),
        f"- Network: smp {spec.arch}{f', size {spec.size}' if spec.size else ''}, encoder `{spec.encoder_name}` "
        f"(depth {spec.encoder_depth}), decoder "
        f"{list(spec.decoder_channels)}, {spec.in_channels} input channel(s)"
        + (f", {params:,} parameters" if params else ""),
        f"- Tile size: {meta.tile_size} px; receptive field: "
        + (f"{meta.receptive_field_px} px" if meta.receptive_field_px else "not recorded"),
        "",
        "## Training data",
        str(prov.get("training_data") or "Not recorded."),
    ]
    if prov.get("data_hash"):
        lines.append(f"\nContent hash of the training set: `{prov['data_hash']}`")
    lines += [
        "",
        "## Pixel size",
        f"The model expects {px}; temzoo resamples every input to it and maps the result back. "
        f"It was {px_range}. Images far from it (more than about 2x) are outside what it has seen.",
        "",
        "## Acquisition conditions",
        str(prov.get("acquisition") or "Not recorded."),
        "",
        "## How to load",
        "```python",
        "import segmentation_models_pytorch as smp",
        f'model = smp.from_pretrained("{where}")  # plain PyTorch; input: 1 channel, standardised per image',
        f'# with pixel size and normalisation: from temzoo.zoo import load_model; ckpt = load_model("{ref}")',
        "```",
        "",
        "## Evaluation",
    ]
    return lines


def _card_evaluation(meta: TemzooMeta, prov: dict, metrics: dict[str, float], eval_name: str) -> list[str]:
    """The body from the evaluation on: metrics, lineage, limitations, citations."""
    task = meta.task
    lines: list[str] = []
    if metrics:
        lines += [f"On {eval_name}:", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in metrics.items()]
    else:
        lines.append("No held-out metrics recorded.")
    lineage = [(k, prov.get(k)) for k in ("base_model", "strategy", "created") if prov.get(k)]
    if lineage or prov.get("versions"):
        lines += ["", "## Lineage", ""]
        lines += [f"- {k.replace('_', ' ')}: `{v}`" for k, v in lineage]
        lines += _training_lines(prov)
        if prov.get("versions"):
            lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(prov["versions"].items())))
    lines += [
        "",
        "## Limitations",
        str(prov.get("limitations") or (
            "Trained on a small data set; expect errors on other materials, contrast mechanisms, doses or pixel "
            "sizes. Check predictions against the image, use the confidence map, and fine-tune on your own labels."
        )),
        "",
        "## Citation",
        "",
    ]
    lines += [f"- {c}" for c in citations(meta)]
    return lines


def citations(meta: TemzooMeta) -> list[str]:
    """The papers a model cites: those recorded in it (a fine-tune records its base's, temzoo.train.loop), else the
    defaults of its task, plus its own strategy's; each once."""
    prov = meta.provenance or {}
    cites = prov.get("citation") or [CITATIONS.get(meta.task, CITATIONS["segmentation"]), CITATIONS["unet"]]
    if isinstance(cites, str):
        cites = [cites]
    cited = _strategy_citation(str(prov.get("strategy") or ""))
    if cited:
        cites = [*cites, CITATIONS[cited]]
    return list(dict.fromkeys(str(c) for c in cites))


def lineage_citations(base: TemzooMeta | None, task: str, strategy: str, corruption: str = "poisson") -> list[str]:
    """What a newly trained model cites: U-Net, its base's papers when it starts from the base's weights (never the
    papers of a base it did not use), its self-supervised method (Poisson denoising or masked reconstruction) when
    that is its own task; its strategy's paper is added by :func:`citations`."""
    cites = citations(base) if base is not None else []
    if task == "denoising":
        cites.append(CITATIONS["masked" if corruption == "mask" else "denoising"])
    cites.append(CITATIONS["unet"])
    strat = _strategy_citation(strategy)
    return [c for c in dict.fromkeys(cites) if not strat or c != CITATIONS[strat]]


def retitle_card(folder: str | Path, name: str, final: str | Path | None = None) -> None:
    """Re-render the card of a freshly trained folder for the name (and final folder) it is installed under: its
    title, Hub model name and load example follow; a folder without a valid card is left alone."""
    import json

    folder = Path(folder)
    card = folder / CARD_FILE
    try:
        text = card.read_text(encoding="utf-8")
        spec = spec_from_config(json.loads((folder / CONFIG_FILE).read_text()))
    except (OSError, ValueError):
        return
    if not card_is_valid(text):
        return
    m = re.search(r"([\d,]+) parameters", text)  # the count the trainer wrote (weights only, no buffers)
    params = int(m.group(1).replace(",", "")) if m else None
    new = render_card(read_meta(folder), spec, model_id=name, params=params, folder=final or folder)
    tmp = card.with_name(f".{CARD_FILE}.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(card)


def _training_lines(prov: dict) -> list[str]:
    """Where and how long it trained, and what it descends from (each step of ``provenance.lineage``)."""
    lines = []
    if prov.get("device"):
        how = [f"{prov['seconds']:g} s" if isinstance(prov.get("seconds"), (int, float)) else None,
               f"{prov['epochs_run']} epochs" if prov.get("epochs_run") else None,
               f"stopped: {prov['stopped']}" if prov.get("stopped") else None]
        lines.append(f"- Trained on: {prov.get('device_name') or prov['device']}"
                     + (f" ({', '.join(h for h in how if h)})" if any(how) else ""))
    for step in prov.get("lineage") or []:
        if isinstance(step, dict) and step.get("model"):
            extra = [f"{k} {step[k]}" for k in ("task", "revision", "license", "strategy") if step.get(k)]
            lines.append(f"- descends from: `{step['model']}`" + (f" ({', '.join(extra)})" if extra else ""))
    return lines


def _strategy_citation(name: str) -> str | None:
    """The CITATIONS key the registered strategy ``name`` cites (None for none or an unknown name)."""
    from temzoo.errors import TemzooError
    from temzoo.train.strategies import get_strategy

    try:
        return get_strategy(name).citation if name else None
    except TemzooError:
        return None


def card_data(text: str) -> dict:
    """The YAML header of a card as a dict ({} when there is none)."""
    from huggingface_hub import ModelCard

    try:
        return ModelCard(text).data.to_dict()
    except Exception:  # noqa: BLE001 - malformed header: treat as none; push re-renders it
        return {}


def card_is_valid(text: str) -> bool:
    """A card temzoo can publish: YAML header with library_name smp and the ``temzoo`` tag."""
    d = card_data(text)
    return d.get("library_name") == "segmentation-models-pytorch" and "temzoo" in (d.get("tags") or [])


def card_body(text: str, demote: int = 0) -> str:
    """The markdown body of a card without its YAML header (for display); ``demote`` adds that many '#' to headings."""
    if text.startswith("---"):
        parts = text.split("\n---", 1)
        if len(parts) == 2:
            text = parts[1].lstrip("-").lstrip("\n")
    if demote:
        text = re.sub(r"^(#{1,6}) ", lambda m: "#" * min(6, len(m.group(1)) + demote) + " ", text, flags=re.M)
    return text


def card_for_folder(folder: str | Path) -> str:
    """The folder's temzoo card, or one rendered from its ``temzoo.json`` and ``config.json`` when it has none."""
    import json

    folder = Path(folder)
    if (folder / CARD_FILE).is_file():
        text = (folder / CARD_FILE).read_text(encoding="utf-8", errors="replace")
        if card_is_valid(text):  # not smp's generic README
            return text
    try:
        spec = spec_from_config(json.loads((folder / CONFIG_FILE).read_text()))
    except (OSError, ValueError):
        spec = ModelSpec()
    return render_card(read_meta(folder), spec, model_id=folder.name)


def write_card(folder: str | Path, text: str) -> Path:
    """Save an edited card as the folder's ``README.md``; refuses one the Hub would not accept as a temzoo card."""
    from temzoo.errors import ModelError

    if not card_is_valid(text):
        raise ModelError(
            "the card needs its YAML header with 'library_name: segmentation-models-pytorch' and the 'temzoo' tag; "
            "keep the header between the '---' lines"
        )
    import os

    from temzoo.paths import bundled_zoo_dir

    real, bundled = Path(os.path.realpath(folder)), Path(os.path.realpath(bundled_zoo_dir()))
    if real == bundled or bundled in real.parents:
        raise ModelError(f"{folder} is a bundled model; temzoo never writes there: save the card of your own copy")
    p = Path(folder) / CARD_FILE
    tmp = p.with_name(f".{CARD_FILE}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return p


def sync_model_cards(dest: Path, bundled_dir: Path | None = None) -> list[Path]:
    """Copy each bundled checkpoint's card to ``dest/<id>.md`` (the checkout's ``model_cards/``); returns the files
    written."""
    from temzoo.paths import bundled_zoo_dir
    from temzoo.zoo.registry import load_registry

    bundled_dir = bundled_dir or bundled_zoo_dir()
    written = []
    for e in load_registry():
        src = bundled_dir / (e.bundled or "") / CARD_FILE
        if e.bundled and src.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / f"{e.id}.md")
            written.append(dest / f"{e.id}.md")
    return written


if __name__ == "__main__":  # python -m temzoo.zoo.cards [DEST]: refresh model_cards/ from the bundled folders
    import sys

    for p in sync_model_cards(Path(sys.argv[1] if len(sys.argv) > 1 else "model_cards")):
        print(p)
