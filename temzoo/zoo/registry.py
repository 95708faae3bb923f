"""The zoo registry: one YAML file listing the zoo's entries (``registry.yaml`` beside this module).

It drives ``zoo list``, the Zoo page and the tests. The first entry is the recommended default base for fine-tuning.
Tests and users can point at another file with ``$TEMZOO_REGISTRY`` or the ``path`` argument.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from temzoo.errors import ModelError

REGISTRY_FILE = Path(__file__).resolve().parent / "registry.yaml"
TASKS = ("segmentation", "denoising")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,95}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class RegistryEntry:
    """One zoo entry as the registry declares it (where it is actually available is :mod:`temzoo.zoo.sources`)."""

    id: str
    task: str = "segmentation"
    description: str = ""
    tags: tuple[str, ...] = ()
    pixel_size_nm: float | None = None
    hub_repo: str | None = None
    revision: str | None = None
    bundled: str | None = None  # folder name under the bundled folder (the repository's zoo/)
    bundled_dir: Path | None = None  # where ``bundled`` lives (registry's ``bundled_dir:``, else repository zoo/)
    extra: dict = field(default_factory=dict, compare=False, hash=False)


def registry_path(path: str | Path | None = None) -> Path:
    """The registry file in use: ``path``, else ``$TEMZOO_REGISTRY``, else the packaged ``registry.yaml``."""
    return Path(path or os.environ.get("TEMZOO_REGISTRY") or REGISTRY_FILE)


def _entry(raw: dict, where: Path, i: int, bundled_dir: Path) -> RegistryEntry:
    if not isinstance(raw, dict) or not raw.get("id"):
        raise ModelError(f"{where}: entry {i + 1} has no 'id'; every zoo entry needs one")
    eid = str(raw["id"])
    if not _ID.match(eid):
        raise ModelError(f"{where}: zoo id {eid!r} must be lowercase letters, digits, '-', '_' or '.'")
    task = str(raw.get("task") or "segmentation")
    if task not in TASKS:
        raise ModelError(f"{where}: entry {eid!r} has task {task!r}; use one of {', '.join(TASKS)}")
    repo = raw.get("hub_repo")
    if repo is not None and not _REPO.match(str(repo)):
        raise ModelError(f"{where}: entry {eid!r} has hub_repo {repo!r}; write it as 'org/name'")
    bundled = raw.get("bundled")
    if bundled is not None and ("/" in str(bundled) or str(bundled).startswith(".")):
        raise ModelError(f"{where}: entry {eid!r}: 'bundled' is a folder name under zoo/, not a path")
    px = raw.get("pixel_size_nm")
    known = {"id", "task", "description", "tags", "pixel_size_nm", "hub_repo", "revision", "bundled"}
    return RegistryEntry(
        id=eid,
        task=task,
        description=str(raw.get("description") or ""),
        tags=tuple(str(t) for t in raw.get("tags") or ()),
        pixel_size_nm=float(px) if px is not None else None,
        hub_repo=str(repo) if repo else None,
        revision=str(raw["revision"]) if raw.get("revision") else None,
        bundled=str(bundled) if bundled else None,
        bundled_dir=bundled_dir,
        extra={k: v for k, v in raw.items() if k not in known},
    )


def load_registry(path: str | Path | None = None) -> list[RegistryEntry]:
    """All entries in file order (the default base first). Raises :class:`ModelError` on a malformed file."""
    import yaml

    p = registry_path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ModelError(f"cannot read the zoo registry {p}: {err.strerror or err}; check $TEMZOO_REGISTRY") from None
    except yaml.YAMLError as err:
        raise ModelError(f"the zoo registry {p} is not valid YAML ({' '.join(str(err).split())[:150]})") from None
    raw = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(raw, list):
        raise ModelError(f"the zoo registry {p} needs a top-level 'entries:' list")
    from temzoo.paths import bundled_zoo_dir

    # A registry may name its own folder of bundled checkpoints (relative to the file); tests use that.
    bdir = Path(doc["bundled_dir"]) if doc.get("bundled_dir") else bundled_zoo_dir()
    if not bdir.is_absolute():
        bdir = p.parent / bdir
    entries = [_entry(r, p, i, bdir) for i, r in enumerate(raw)]
    ids = [e.id for e in entries]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ModelError(f"the zoo registry {p} lists {', '.join(dup)} more than once; ids must be unique")
    return entries


def get_entry(model_id: str, path: str | Path | None = None) -> RegistryEntry | None:
    """The entry with this id, or None."""
    return next((e for e in load_registry(path) if e.id == model_id), None)


def default_base(path: str | Path | None = None) -> str:
    """Id of the recommended default base for fine-tuning: the registry's first entry."""
    entries = load_registry(path)
    if not entries:
        raise ModelError(f"the zoo registry {registry_path(path)} is empty; add an entry or pass --base")
    return entries[0].id


EVIDENCE_FILE = Path(__file__).resolve().parent / "transfer_evidence.json"
# bench_transfer tests a base *family* with the target held out (generalist-minus-<target>); users get the shipped
# member that saw everything.
FAMILY_MEMBER = {"generalist": "generalist-tem"}
HRTEM_BELOW_NM = 0.15  # calibrated images finer than this are matched with the HRTEM evidence, coarser with BF-TEM


@dataclass(frozen=True)
class Recommendation:
    """The base to fine-tune from and the one-sentence reason (shown by the Fine-tune page and ``--base auto``)."""

    base: str
    reason: str


def load_evidence(path: str | Path | None = None) -> dict | None:
    """bench_transfer's per-target summary (``temzoo/zoo/transfer_evidence.json``), or None when absent/unreadable."""
    import json

    p = Path(path) if path else EVIDENCE_FILE
    try:
        ev = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return ev if isinstance(ev, dict) and isinstance(ev.get("targets"), dict) else None


def _match_target(targets: dict, pixel_size_nm: float | None) -> tuple[str, dict] | None:
    """The benchmark target most like images at ``pixel_size_nm``: HRTEM below 0.15 nm/px, else the BF-TEM target
    nearest in pixel size; uncalibrated images match the uncalibrated BF-TEM target (UO2-like), else any BF-TEM."""
    import math

    if pixel_size_nm:
        modality = "hrtem" if pixel_size_nm < HRTEM_BELOW_NM else "bf-tem"
        same = [(t, v) for t, v in targets.items() if v.get("modality") == modality]
        scaled = [(t, v) for t, v in same if v.get("pixel_size_nm")]
        if scaled:
            return min(scaled, key=lambda tv: abs(math.log(pixel_size_nm / tv[1]["pixel_size_nm"])))
        return same[0] if same else None
    bf = [(t, v) for t, v in targets.items() if v.get("modality") == "bf-tem"]
    unscaled = [(t, v) for t, v in bf if not v.get("pixel_size_nm")]
    return (unscaled or bf or [None])[0]


def recommend_base(pixel_size_nm: float | None, n_labelled: int | None = None, path: str | Path | None = None,
                   evidence: str | Path | None = None) -> Recommendation:
    """The base to start a fine-tune from for ``n_labelled`` images at ``pixel_size_nm``, and why.

    1. Images at the default base's own scale (within 4x of its pixel size): the default base, which was trained on
       that kind of image (docs/PRETRAINING_STUDY.md, section 5: +0.08 to +0.21 F1 over scratch on unseen simulated
       fields).
    2. Otherwise the transfer evidence (bench/bench_transfer.py, leave-one-set-out, written to
       ``transfer_evidence.json``): the target most like these images (by modality and pixel size), at the nearest
       number of labelled images, and the base with the highest mean F1 there (a family tested held-out maps to its
       shipped member, e.g. generalist -> generalist-tem), if the zoo has it.
    3. No evidence for this kind of image: scratch.
    """
    entries = load_registry(path)
    ids = {e.id for e in entries}
    if entries:
        first = entries[0]
        if pixel_size_nm and first.pixel_size_nm and 0.25 <= pixel_size_nm / first.pixel_size_nm <= 4:
            return Recommendation(first.id, f"{first.id} was trained on this kind of image (near "
                                  f"{first.pixel_size_nm:g} nm/px) and beat scratch by +0.08 to +0.21 pixel F1 on "
                                  "unseen simulated fields with 2-8 labels (docs/PRETRAINING_STUDY.md, section 5)")
    ev = load_evidence(evidence)
    match = _match_target(ev["targets"], pixel_size_nm) if ev else None
    if match is None:
        return Recommendation("scratch", "no transfer measurement covers this kind of image yet "
                              "(bench/bench_transfer.py), and no zoo base was trained at its scale")
    target, info = match
    sizes = sorted(int(n) for n in info.get("results", {}))
    if not sizes:
        return Recommendation("scratch", f"the transfer evidence for {target} holds no results")
    n = min(sizes, key=lambda k: (abs(k - n_labelled), -k)) if n_labelled else max(sizes)
    cells = info["results"][str(n)]["bases"]
    ranked = sorted(cells, key=lambda b: cells[b]["mean"], reverse=True)
    p = ev.get("protocol", {})
    how = (f"{p.get('minutes_cpu_per_run', '?')} CPU-min, {len(p.get('seeds', []))} seeds, "
           f"bench/bench_transfer.py")
    kind = f"{target} ({info.get('modality', '?')}, {info.get('structure', '')})"
    scratch = cells.get("scratch")
    for b in ranked:
        member = "scratch" if b == "scratch" else FAMILY_MEMBER.get(b, b)
        if member != "scratch" and member not in ids:
            continue
        c = cells[b]
        if member == "scratch":
            best_other = next((o for o in ranked if o != "scratch"), None)
            vs = f"; best base {best_other} {cells[best_other]['mean']:.3f}" if best_other else ""
            return Recommendation("scratch", f"on {kind} with {n} labelled images no zoo base beat scratch "
                                  f"(scratch pixel F1 {c['mean']:.3f}{vs}; {how})")
        diff = c.get("diff_mean")
        gain = (f"beat scratch by {diff:+.3f} pixel F1 (± {c.get('diff_sd', 0):.3f} over seeds)" if diff is not None
                and diff > 0 else f"scored {c['mean']:.3f} pixel F1 against scratch's "
                f"{scratch['mean'] if scratch else float('nan'):.3f}")
        held = " with that set held out" if b in FAMILY_MEMBER else ""
        return Recommendation(member, f"on {kind} with {n} labelled images, {b}{held} {gain} ({how})")
    return Recommendation("scratch", f"none of the bases measured on {target} is in this zoo")


def recommended_base(pixel_size_nm: float | None, path: str | Path | None = None, n_labelled: int | None = None,
                     evidence: str | Path | None = None) -> str:
    """Id of :func:`recommend_base`'s choice (``"scratch"`` or a zoo id)."""
    return recommend_base(pixel_size_nm, n_labelled, path, evidence).base
