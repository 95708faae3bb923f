"""Shared bits of the pretraining recipes: paths, timing, evaluation, and rewriting a result's card."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no Hub lookups while training (each miss stalls ~23 s offline)


def bench_module(name: str):
    """``bench/<name>.py`` as a module: a recipe reuses a benchmark's splits (neither folder is an installed package,
    and the recipes run against the installed temzoo, so nothing is added to ``sys.path``)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(f"bench.{name}", Path(__file__).resolve().parents[2] / "bench"
                                                  / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def work_dir(name: str, given: str | None) -> Path:
    """Scratch folder for simulated data and training runs (outside the repository: nothing here is committed)."""
    from temzoo.paths import home

    p = Path(given) if given else home() / "recipes" / name
    p.mkdir(parents=True, exist_ok=True)
    return p


@contextmanager
def timed(what: str, log: dict):
    t = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {what} ...", flush=True)
    yield
    log[what] = round(time.perf_counter() - t, 1)
    print(f"[{time.strftime('%H:%M:%S')}] {what}: {log[what]} s", flush=True)


def machine() -> str:
    import platform

    import torch

    from temzoo.device import describe_device

    gpu = describe_device() if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared), torch " \
           f"{torch.__version__} ({torch.get_num_threads()} threads), {gpu}"


def evaluate(model_dir: Path, images: Path, masks: Path, pixel_size_nm: float | None = None,
             device: str = "auto") -> dict:
    """Pooled held-out metrics (temzoo.metrics.evaluate_folders) without the per-image list."""
    from temzoo.metrics import evaluate_folders
    from temzoo.predict import PredictOptions
    from temzoo.zoo import load_model

    ck = load_model(str(model_dir))
    res = evaluate_folders(ck, images, masks, pixel_size_nm=pixel_size_nm, options=PredictOptions(device=device))
    keep = ("f1", "iou", "precision", "recall", "object_f1", "count_error", "ece", "n_images")
    out = {k: (round(float(res[k]), 4) if isinstance(res[k], float) else res[k]) for k in keep}
    out["per_image"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                        for r in res["per_image"]]
    return out


def rewrite_card(folder: Path, *, model_id: str, provenance: dict, description: str | None = None,
                 extra_md: str = "") -> str:
    """Merge ``provenance`` into the folder's temzoo.json, re-render the card (temzoo.zoo.cards.render_card) and
    append ``extra_md`` (tables of measured numbers); returns the card text."""
    from temzoo.zoo.cards import render_card
    from temzoo.zoo.checkpoint import CONFIG_FILE, META_FILE, read_meta, spec_from_config
    from temzoo.zoo.sources import count_params

    meta = read_meta(folder)
    meta.provenance = {**(meta.provenance or {}), **provenance}
    if description:
        meta.description = description
    spec = spec_from_config(json.loads((folder / CONFIG_FILE).read_text()))
    card = render_card(meta, spec, model_id=model_id, params=count_params(folder))
    if extra_md:
        card = card.rstrip("\n") + "\n\n" + extra_md.strip("\n") + "\n"
    (folder / META_FILE).write_text(meta.to_json())
    (folder / "README.md").write_text(card)
    # the training writes private temp folders (0700/0600); a shipped checkpoint is world-readable
    folder.chmod(0o755)
    for p in folder.iterdir():
        p.chmod(0o644)
    return card


def publish(result: Path, out: Path, *, provenance: dict, extra_md: str, eval_json: dict,
            float16: bool = False) -> None:
    """Copy a training result to ``out`` (a zoo folder) with its card and ``eval.json``; the old folder is replaced
    only once the new one is complete, so an interrupted recipe never leaves a half-written checkpoint.
    ``float16`` stores the weights at half the bytes (``temzoo.zoo.checkpoint.store_float16``)."""
    import shutil

    from temzoo.zoo.checkpoint import store_float16

    if out.exists() and not _published_by_a_recipe(out):
        raise SystemExit(f"error: {out} exists and is not a checkpoint a recipe published; the recipe replaces only "
                         "its own output: give a new folder")
    tmp, old = out.with_name(f".{out.name}.new"), out.with_name(f".{out.name}.old")
    for d in (tmp, old):
        shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(result, tmp)
    if float16:
        store_float16(tmp)
    rewrite_card(tmp, model_id=out.name, provenance=provenance, extra_md=extra_md)
    (tmp / "eval.json").write_text(json.dumps(eval_json, indent=1))
    (tmp / "eval.json").chmod(0o644)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _published_by_a_recipe(folder: Path) -> bool:
    """Every recipe records itself in ``provenance.recipe``; a folder without it (a user's own checkpoint, or no
    checkpoint at all) is never replaced."""
    from temzoo.errors import TemzooError
    from temzoo.zoo.meta import read_meta

    try:
        return bool(read_meta(folder).provenance.get("recipe"))
    except TemzooError:  # a broken temzoo.json: not ours to replace
        return False


def md_table(rows: list[dict], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = ""
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append(f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v)))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body
