"""Comparing strategies (and labelled-set sizes) on the same validation split: a group of queued jobs and a table.

A comparison is a JSON file (``<root>/comparisons/<id>.json``) listing its runs (strategy, number of training images,
job folder). Every run validates on the same pinned images (``TrainConfig.val_names``), so the F1 scores compare.
Its jobs and their results stay in ``<root>/comparisons/<id>/`` (never the user's zoo); :func:`save_winner` copies the
best one there.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import replace
from pathlib import Path

from temzoo.errors import DataError
from temzoo.train import jobs, labelset
from temzoo.zoo.meta import read_meta


def _pick_val(pairs: list[labelset.LabelPair], val_fraction: float) -> list[labelset.LabelPair]:
    """The last ~val_fraction of the pairs (at least one), fixed for every run of the comparison."""
    n_val = max(1, round(len(pairs) * val_fraction))
    return pairs[-n_val:]


def _plan(pairs: list[labelset.LabelPair], val_fraction: float | None,
          sizes: list[int] | None) -> tuple[list[labelset.LabelPair], list[int]]:
    """The pinned validation pairs and the training-set sizes to run (None: all training images)."""
    val = _pick_val(pairs, val_fraction or 0.25)
    n_train = len(pairs) - len(val)
    return val, plan_sizes(n_train, sizes) if sizes else [n_train]


def plan_sizes(n_available: int, sizes: list[int]) -> list[int]:
    """The requested training-set sizes that the set can hold (after keeping one validation image)."""
    return sorted({s for s in sizes if 1 <= s <= n_available})


def submit_comparison(config, strategies: list[str], sizes: list[int] | None, root: str | Path,
                      name: str = "compare") -> dict:
    """Queue one job per (strategy, training-set size); returns the comparison record (also saved to disk).

    ``config`` is a TrainConfig whose ``images``/``masks`` name a labelled set (``images/`` + ``masks/``);
    ``sizes`` None means all training images. Subsets are symlinked folders holding the first N training images plus
    the pinned validation images.
    """
    root = Path(root)
    set_dir = Path(config.images).parent
    pairs = labelset.list_pairs(set_dir)
    if len(pairs) < 2:
        raise DataError(f"the labelled set {set_dir} has {len(pairs)} labelled image(s); a comparison needs at least 2")
    if not strategies:
        raise DataError("choose at least one strategy to compare")
    for strategy in strategies:  # refuse the whole comparison before queueing any run
        replace(config, strategy=strategy).validate()
    val, wanted = _plan(pairs, config.val_fraction, sizes)
    train_pairs = [p for p in pairs if p not in val]
    if not wanted:
        raise DataError(f"the set has {len(train_pairs)} training images; choose sizes between 1 and that")
    cid = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    record = {"id": cid, "name": name, "created": time.time(), "set": str(set_dir),
              "val_names": [p.name for p in val], "runs": []}
    here = root / "comparisons" / cid
    for n in wanted:
        sub = here / f"{n}img"
        _link_pairs(train_pairs[:n] + val, sub)
        for strategy in strategies:
            cfg = replace(config, images=str(sub / "images"), masks=str(sub / "masks"), strategy=strategy,
                          val_names=[p.name for p in val])
            h = jobs.submit(cfg, root=here / "jobs", name=f"{name}-{strategy}-{n}img-{cid[-4:]}",
                            zoo_dir=here / "models")
            record["runs"].append({"strategy": strategy, "n_images": n, "job": str(h.dir)})
    _save(root, record)
    return record


def _link_pairs(pairs: list[labelset.LabelPair], dest: Path) -> None:
    for sub in ("images", "masks"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for p in pairs:
        for src, sub in ((p.image, "images"), (p.mask, "masks")):
            link = dest / sub / src.name
            if not link.exists():
                os.symlink(src.resolve(), link)


def _save(root: Path, record: dict) -> None:
    d = root / "comparisons"
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{record['id']}.json.tmp"
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, d / f"{record['id']}.json")


def list_comparisons(root: str | Path) -> list[dict]:
    """Saved comparisons under ``root``, newest first."""
    d = Path(root) / "comparisons"
    out = []
    for f in d.glob("*.json") if d.is_dir() else []:
        try:
            out.append(json.loads(f.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda r: r.get("created", 0), reverse=True)


def summarize_job(job) -> dict:
    """Best validation scores and timing of one job, from its metrics.jsonl and status. When no epoch beat the base,
    the result is the base and its scores are the base's (the trainer scored it on the same validation images)."""
    st = jobs.status(job)
    recs = jobs.read_metrics(job)
    f1 = [(r.get("val_f1"), r) for r in recs if isinstance(r.get("val_f1"), (int, float))]
    best = max(f1, key=lambda t: t[0])[1] if f1 else {}
    kept = jobs.base_kept_note(st.result) is not None
    if kept:
        scores = read_meta(st.result).provenance.get("metrics") or {}
        best = {"val_f1": scores.get("f1"), "val_iou": scores.get("iou"), "seconds": 0.0}
    ran = jobs.ran_seconds(st)
    return {
        "state": st.state,
        "epochs": len(recs),
        "best_val_f1": best.get("val_f1"),
        "best_val_iou": best.get("val_iou"),
        "seconds_to_best": best.get("seconds"),
        "seconds": round(ran, 1) if ran is not None else None,
        "device": st.device,
        "result": st.result,
        "base_kept": kept,  # no epoch beat the base: result = base
        "error": st.error,
    }


def table(record: dict) -> list[dict]:
    """One row per run: strategy, labelled images, state, best F1/IoU, time."""
    rows = []
    for run in record.get("runs", []):
        try:
            s = summarize_job(run["job"])
        except Exception as err:  # noqa: BLE001 - a missing job folder shows as a row, not a crash
            s = {"state": "missing", "error": str(err)}
        rows.append({"strategy": run["strategy"], "n_images": run["n_images"], **s})
    return rows


def planned_runs(set_dir: str | Path, strategies: list[str], sizes: list[int] | None,
                 val_fraction: float = 0.25) -> int:
    """How many runs :func:`submit_comparison` would queue for the labelled set in ``set_dir``."""
    pairs = labelset.list_pairs(Path(set_dir))
    if len(pairs) < 2:
        return 0
    _, wanted = _plan(pairs, val_fraction, sizes)
    return len(wanted) * len(strategies)


def save_winner(record: dict, name: str | None = None, zoo: str | Path | None = None) -> Path:
    """Copy the run with the best validation F1 into the user's zoo (``zoo``, default the local zoo) under ``name``
    (a free name is chosen when taken; nothing is overwritten); returns its folder."""
    from temzoo import paths

    done = [r for r in table(record) if r["state"] == "done" and r.get("result")
            and isinstance(r.get("best_val_f1"), (int, float))]
    if not done:
        raise DataError("no run of this comparison has finished yet; wait for one, then save the winner")
    best = max(done, key=lambda r: r["best_val_f1"])
    default = f"{record.get('name', 'compare')}-{best['strategy']}-{best['n_images']}img"
    return jobs.install_folder(Path(best["result"]), Path(zoo or paths.local_zoo_dir()), name or default)
