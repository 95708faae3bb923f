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


def recommended_base(pixel_size_nm: float | None, path: str | Path | None = None) -> str:
    """The base to start a fine-tune from for images at ``pixel_size_nm``: the default base when the images are at
    its scale (within 4x of its pixel size), otherwise ``"scratch"``.

    Why (docs/PRETRAINING_STUDY.md, section 5): on simulated HRTEM the simulation-pretrained base beat scratch by
    0.15-0.2 F1 at 2-8 labelled images, but on real bright-field sets at other scales (UO2 grain boundaries, steel
    dislocation loops) no bundled base beat scratch at the same budget.
    """
    entries = load_registry(path)
    if not entries:
        return "scratch"
    first = entries[0]
    if pixel_size_nm and first.pixel_size_nm and 0.25 <= pixel_size_nm / first.pixel_size_nm <= 4:
        return first.id
    return "scratch"
