"""Where zoo models live and how a ``--model`` reference resolves to a checkpoint folder.

Sources, in order of precedence: ``bundled`` (the repository's ``zoo/``), ``local`` (the user's zoo,
:func:`temzoo.paths.local_zoo_dir`: every folder with ``config.json`` + ``model.safetensors``), ``cache`` (the Hugging
Face cache) and ``hub`` (``temzoo``-tagged models, only when :func:`temzoo.zoo.network.online` says so). Registry
entries come first, in registry order (the default base first); an entry is listed only when some source has it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from temzoo.errors import ModelError, TemzooError
from temzoo.paths import bundled_zoo_dir, local_zoo_dir
from temzoo.zoo.checkpoint import (CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, Checkpoint, _require_regular_files,
                                   load_checkpoint, read_meta)
from temzoo.zoo.registry import RegistryEntry, load_registry

SOURCES = ("bundled", "local", "cache", "hub")
# Tags every temzoo card carries: useless for filtering.
_BOILERPLATE_TAGS = {"temzoo", "tem", "electron-microscopy", "segmentation-models-pytorch", "segmentation",
                     "denoising", "model_hub_mixin", "pytorch_model_hub_mixin", "pytorch"}
Progress = Callable[[float, str], None]


@dataclass
class ZooModel:
    """One model the zoo can offer now, and where it lives."""

    id: str
    source: str  # bundled | local | cache | hub
    path: Path | None  # folder on disk; None for Hub-only
    pixel_size_nm: float | None = None
    classes: list[str] | None = None
    params: int | None = None
    description: str = ""
    task: str = "segmentation"
    tags: tuple[str, ...] = ()
    hub_repo: str | None = None
    revision: str | None = None
    registered: bool = False  # listed in the registry
    default_base: bool = False  # the registry's recommended base for fine-tuning
    extra: dict = field(default_factory=dict)
    damaged: str | None = None  # why the folder cannot be used (listed with include_damaged=True, never offered)

    @property
    def card(self) -> str | None:
        """The model card (the folder's temzoo card, else one rendered from its metadata); None for Hub-only."""
        if self.path is None:
            return None
        from temzoo.zoo.cards import card_for_folder

        try:
            return card_for_folder(self.path)
        except (ModelError, OSError, ValueError):
            return None

    @property
    def ref(self) -> str:
        """What to pass to :func:`load_model` (zoo id for registry and local entries, repo id for Hub ones)."""
        return self.id

    def to_json(self) -> dict:
        """The ``zoo list --json`` record (ARCHITECTURE.md)."""
        return {
            "id": self.id,
            "source": self.source,
            "path": str(self.path) if self.path is not None else None,
            "pixel_size_nm": self.pixel_size_nm,
            "classes": self.classes,
            "params": self.params,
            "description": self.description,
        }


def is_checkpoint_dir(p: Path) -> bool:
    """Does ``p`` count as a model? A folder with config.json and model.safetensors whose name is not hidden and
    does not end in ``.partial``: those are work folders of a save or install that was killed half-way."""
    if p.name.startswith(".") or p.name.endswith(".partial"):
        return False
    return p.is_dir() and (p / CONFIG_FILE).is_file() and (p / WEIGHTS_FILE).is_file()


def count_params(folder: Path) -> int | None:
    """Parameter count from the safetensors header alone (no weights read); None if unreadable."""
    try:
        with open(folder / WEIGHTS_FILE, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000:
                return None
            header = json.loads(f.read(n))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError):
        return None
    total = 0
    for name, t in header.items():
        if name == "__metadata__" or "num_batches_tracked" in name:
            continue
        size = 1
        for d in t.get("shape", []):
            size *= int(d)
        # BatchNorm running statistics are buffers, not parameters.
        if not (name.endswith(".running_mean") or name.endswith(".running_var")):
            total += size
    return total


def _card_tags(folder: Path) -> tuple[str, ...]:
    """Tags from the card's YAML header (cheap: no Hub client needed)."""
    import yaml

    try:
        text = (folder / CARD_FILE).read_text(encoding="utf-8")
        if text.startswith("---"):
            head = yaml.safe_load(text.split("---", 2)[1]) or {}
            tags = [str(t) for t in head.get("tags") or ()]
            if "temzoo" in tags:  # smp's generic README carries only boilerplate tags
                return tuple(t for t in tags if t not in _BOILERPLATE_TAGS)
    except (OSError, IndexError, yaml.YAMLError, AttributeError):
        pass
    return ()


def _from_folder(mid: str, source: str, folder: Path, entry: RegistryEntry | None) -> ZooModel:
    """The listing of one checkpoint folder; a damaged one (junk temzoo.json, a FIFO, absurd values) is listed as
    damaged with its reason: one bad folder never takes a listing (or a page) down."""
    try:
        return _describe_folder(mid, source, folder, entry)
    except Exception as err:  # noqa: BLE001 - see docstring; the reason is shown in one line
        reason = str(err) if isinstance(err, TemzooError) else f"{type(err).__name__}: {err}"
        reason = " ".join(reason.split())[:240]
        return ZooModel(id=mid, source=source, path=folder, registered=entry is not None, damaged=reason,
                        description=f"damaged: {reason}", hub_repo=entry.hub_repo if entry else None)


def _check_listed(folder: Path, meta) -> None:
    """What the listing and the pages rely on: regular files (a FIFO would block), a finite positive pixel size,
    class names as strings."""
    import math

    if (folder / CARD_FILE).exists() and not (folder / CARD_FILE).is_file():
        raise ModelError(f"{folder / CARD_FILE} is not a regular file")
    px = meta.pixel_size_nm
    if px is not None and (isinstance(px, bool) or not isinstance(px, (int, float)) or not math.isfinite(px)
                           or px <= 0):
        raise ModelError(f"temzoo.json has pixel size {str(px)[:40]!r}; it must be a positive number or null")
    names = meta.class_names
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ModelError("temzoo.json class_names must be a list of names")
    if meta.task not in ("segmentation", "denoising"):
        raise ModelError(f"temzoo.json task {str(meta.task)[:40]!r} is not segmentation or denoising")


def _describe_folder(mid: str, source: str, folder: Path, entry: RegistryEntry | None) -> ZooModel:
    _require_regular_files(folder)  # before any read: a FIFO temzoo.json would block the listing forever
    meta = read_meta(folder)
    _check_listed(folder, meta)
    return ZooModel(
        id=mid,
        source=source,
        path=folder,
        pixel_size_nm=meta.pixel_size_nm if meta and meta.pixel_size_nm else (entry.pixel_size_nm if entry else None),
        classes=(list(meta.class_names) if meta.task == "segmentation" else []) if meta else None,
        params=count_params(folder),
        description=(entry.description if entry and entry.description else (meta.description if meta else "")),
        task=meta.task if meta else (entry.task if entry else "segmentation"),
        tags=entry.tags if entry else _card_tags(folder),
        hub_repo=entry.hub_repo if entry else None,
        revision=entry.revision if entry else None,
        registered=entry is not None,
    )


def _local_folder(entry: RegistryEntry, source: str) -> Path | None:
    if source == "bundled" and entry.bundled:
        p = (entry.bundled_dir or bundled_zoo_dir()) / entry.bundled
    elif source == "local":
        p = local_zoo_dir() / entry.id
    else:
        return None
    return p if is_checkpoint_dir(p) else None


def list_models(hub: bool | None = None, registry: str | Path | None = None,
                include_damaged: bool = False) -> list[ZooModel]:
    """Every model available now: registry entries first (default base first), then local, cached and Hub extras.

    ``hub``: include the Hub (None: only when online; the probe takes at most ~1 s and offline costs nothing).
    ``include_damaged``: also the folders that cannot be used (``damaged`` says why); hidden folders (temporaries
    such as a killed install's) are never models.
    """
    out = _list_all(hub, registry)
    return out if include_damaged else [m for m in out if m.damaged is None]


def _list_all(hub: bool | None, registry: str | Path | None) -> list[ZooModel]:
    from temzoo.zoo import network

    entries = load_registry(registry)
    use_hub = network.online() if hub is None else (hub and network.online())
    # The HF cache and Hub are only consulted when something can be there: importing the client costs ~0.5 s.
    from temzoo.zoo import hub as hubmod

    hub_listing = {m.repo_id: m for m in hubmod.list_hub_models()} if use_hub else {}
    cached = dict(hubmod.cached_repos())
    out: list[ZooModel] = []
    seen_paths: set[Path] = set()
    seen_repos: set[str] = set()
    for e in entries:
        model = None
        for source in ("bundled", "local"):
            folder = _local_folder(e, source)
            if folder is not None:
                model = _from_folder(e.id, source, folder, e)
                break
        if model is None and e.hub_repo:
            folder = cached.get(e.hub_repo) or hubmod.cached_snapshot(e.hub_repo, e.revision)
            if folder is not None:
                model = _from_folder(e.id, "cache", folder, e)
            elif e.hub_repo in hub_listing:
                model = ZooModel(id=e.id, source="hub", path=None, pixel_size_nm=e.pixel_size_nm,
                                 description=e.description, task=e.task, tags=e.tags, hub_repo=e.hub_repo,
                                 revision=e.revision, registered=True)
        if e.hub_repo:
            seen_repos.add(e.hub_repo)
        if model is None:
            continue  # declared but not available from any source yet
        model.default_base = not out and e is entries[0] and model.damaged is None
        out.append(model)
        if model.path is not None:
            seen_paths.add(model.path.resolve())
    ids = {m.id for m in out} | {e.id for e in entries}
    lz = local_zoo_dir()
    if lz.is_dir():
        for p in sorted(lz.iterdir()):
            if not p.name.startswith(".") and is_checkpoint_dir(p) and p.name not in ids \
                    and p.resolve() not in seen_paths:
                out.append(_from_folder(p.name, "local", p, None))
    for repo_id, folder in cached.items():
        if repo_id not in seen_repos:
            m = _from_folder(repo_id, "cache", folder, None)
            m.hub_repo = repo_id
            out.append(m)
            seen_repos.add(repo_id)
    for repo_id, hm in hub_listing.items():
        if repo_id not in seen_repos:
            out.append(ZooModel(id=repo_id, source="hub", path=None, hub_repo=repo_id, tags=hm.tags,
                                task="denoising" if hm.pipeline_tag == "image-to-image" else "segmentation"))
    return out


def resolve(ref: str, progress: Progress | None = None, registry: str | Path | None = None) -> tuple[Path, str]:
    """Turn a zoo id, a folder or a Hub repo id into a checkpoint folder on disk (downloading if needed)."""
    from temzoo.zoo import hub as hubmod

    if not isinstance(ref, str) or not ref.strip():
        raise ModelError("no model given: pass a zoo id (see 'python -m temzoo zoo list'), a folder or a Hub repo id")
    ref = ref.strip()
    p = Path(ref).expanduser()
    if p.is_dir():
        return p, ref
    from temzoo.zoo.timm_base import is_timm_ref

    if is_timm_ref(ref):
        raise ModelError(f"{ref} is an ImageNet encoder without a trained decoder: use it as finetune --base, "
                         "not as a model to run")
    entry = next((e for e in load_registry(registry) if e.id == ref), None)
    if entry is not None:
        for source in ("bundled", "local"):
            folder = _local_folder(entry, source)
            if folder is not None:
                return folder, ref
        if entry.hub_repo:
            try:
                return hubmod.download(entry.hub_repo, entry.revision, progress=progress), ref
            except ModelError as err:
                raise ModelError(f"zoo model {ref!r} is not bundled, not in your local zoo, and {err}") from None
        raise ModelError(f"zoo model {ref!r} is not available here yet (not bundled, not in {local_zoo_dir()})")
    if "/" not in ref and "\\" not in ref and is_checkpoint_dir(local_zoo_dir() / ref):
        return local_zoo_dir() / ref, ref
    if ref.startswith((".", "/", "~")) or ref.count("/") != 1:
        raise ModelError(f"unknown model {ref!r}: no such folder or zoo id; see 'python -m temzoo zoo list'")
    hubmod.validate_repo_id(ref)
    try:
        return hubmod.download(ref, progress=progress), ref
    except ModelError as err:
        raise ModelError(f"{ref!r} is not a folder or zoo id; as a Hub repo: {err}") from None


def load_model(ref: str, progress: Progress | None = None, registry: str | Path | None = None) -> Checkpoint:
    """Load a checkpoint from a zoo id, a local folder or a Hub repo id (safetensors only, eval mode, CPU); a
    ``timm:NAME`` base loads as an ImageNet encoder with a fresh decoder (:mod:`temzoo.zoo.timm_base`)."""
    from temzoo.zoo import timm_base

    if timm_base.is_timm_ref(ref) and not Path(ref).expanduser().is_dir():
        return timm_base.load(ref, progress=progress)
    folder, mid = resolve(ref, progress=progress, registry=registry)
    return load_checkpoint(folder, model_id=mid)


def filter_models(
    models: list[ZooModel],
    task: str | None = None,
    tags: list[str] | tuple[str, ...] = (),
    pixel_size_nm: float | None = None,
    tolerance: float = 2.0,
) -> list[ZooModel]:
    """Models of ``task`` carrying any of ``tags`` whose pixel size is within ``tolerance``x of ``pixel_size_nm``.

    Models without a recorded pixel size are kept (they cannot be ruled out); None/empty means "any".
    """
    out = []
    for m in models:
        if task and m.task != task:
            continue
        if tags and not set(tags) & set(m.tags):
            continue
        if pixel_size_nm and m.pixel_size_nm:
            ratio = m.pixel_size_nm / pixel_size_nm
            if not (1 / tolerance <= ratio <= tolerance):
                continue
        out.append(m)
    return out
