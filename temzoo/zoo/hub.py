"""The Hugging Face Hub side of the zoo: validate repo ids, list ``temzoo`` models, download, find in cache, push.

Only ``*.safetensors``, ``*.json`` and ``*.md`` are ever downloaded or pushed. The token comes from ``$HF_TOKEN`` or
the Hub login (``huggingface_hub.get_token``) and is handed to the client only: never printed, logged or written.
``HF_ENDPOINT`` is honoured (the client reads it at import; see :mod:`temzoo.zoo.network`).
"""

from __future__ import annotations

import io
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from temzoo.errors import ModelError
from temzoo.zoo import network
from temzoo.zoo.checkpoint import CARD_FILE, CONFIG_FILE, META_FILE, WEIGHTS_FILE, load_checkpoint, read_meta

ALLOW_PATTERNS = ["*.safetensors", "*.json", "*.md"]
HUB_TAG = "temzoo"
PUSH_FILES = (CONFIG_FILE, WEIGHTS_FILE, META_FILE, CARD_FILE)

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class HubModel:
    """A ``temzoo``-tagged model listed on the Hub."""

    repo_id: str
    sha: str | None = None
    tags: tuple[str, ...] = ()
    downloads: int | None = None
    pipeline_tag: str | None = None


def validate_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is a valid Hub model id ('org/name'), else raise :class:`ModelError`."""
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as _validate

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ModelError(f"{repo_id!r} is not a Hub repo id; write it as 'org/name'")
    try:
        _validate(repo_id)
    except HFValidationError as err:
        raise ModelError(f"{repo_id!r} is not a valid Hub repo id ({' '.join(str(err).split())[:160]})") from None
    return repo_id


def _hub_error(err: Exception, what: str) -> ModelError:
    """One-line message for a client failure; the message never contains the token (the client redacts it)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(err, GatedRepoError):
        return ModelError(f"{what}: the repo is gated; accept its terms on the Hub and log in")
    if isinstance(err, RepositoryNotFoundError):
        return ModelError(f"{what}: no such repo on the Hub (or it is private and no token allows it)")
    if isinstance(err, RevisionNotFoundError):
        return ModelError(f"{what}: that revision does not exist on the Hub")
    if isinstance(err, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return ModelError(f"{what}: not in the local cache and the Hub is offline; connect and retry")
    if isinstance(err, HfHubHTTPError):
        code = getattr(getattr(err, "response", None), "status_code", "?")
        if code in (401, 403):
            return ModelError(f"{what}: the Hub refused the token (HTTP {code}); check its write permission")
        return ModelError(f"{what}: the Hub answered HTTP {code}; retry later")
    msg = " ".join(str(err).split())[:160]
    return ModelError(f"{what}: {type(err).__name__}: {msg}; check the network or HF_ENDPOINT")


def _client_errors() -> tuple[type[BaseException], ...]:
    import httpx2 as httpx
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled

    return (HfHubHTTPError, EntryNotFoundError, OfflineModeIsEnabled, httpx.HTTPError, OSError, ValueError)


def list_hub_models(limit: int = 200) -> list[HubModel]:
    """``temzoo``-tagged smp models on the Hub; [] when offline (never waits on a dead network)."""
    if not network.online():
        return []
    from huggingface_hub import HfApi

    try:
        infos = HfApi().list_models(filter=["segmentation-models-pytorch", HUB_TAG], limit=limit)
        return [
            HubModel(repo_id=m.id, sha=m.sha, tags=tuple(m.tags or ()), downloads=m.downloads,
                     pipeline_tag=m.pipeline_tag)
            for m in infos
        ]
    except _client_errors():
        return []


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The HF-cache folder of a downloaded checkpoint (no network), or None when it is not cached complete."""
    from huggingface_hub import snapshot_download

    try:
        p = Path(snapshot_download(repo_id, revision=revision, allow_patterns=ALLOW_PATTERNS, local_files_only=True))
    except _client_errors():
        return None
    return p if (p / CONFIG_FILE).is_file() and (p / WEIGHTS_FILE).is_file() else None


def cached_repos() -> list[tuple[str, Path]]:
    """(repo id, snapshot folder) of every temzoo checkpoint in the HF cache (those with a ``temzoo.json``)."""
    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        # The cache folder as it is now: scan_cache_dir's own default is the value at its module's import time.
        info = scan_cache_dir(constants.HF_HUB_CACHE)
    except (CacheNotFound, OSError):
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        # Prefer the revision a ref (main) points at; else the most recently modified snapshot.
        revs = sorted(repo.revisions, key=lambda r: (bool(r.refs), r.last_modified), reverse=True)
        for rev in revs:
            p = Path(rev.snapshot_path)
            if all((p / f).is_file() for f in (CONFIG_FILE, WEIGHTS_FILE, META_FILE)):
                out.append((repo.repo_id, p))
                break
    return out


def _progress_tqdm(progress: Progress):
    """A tqdm class that forwards the byte counts of ``snapshot_download`` to ``progress(fraction, text)``."""
    from tqdm.auto import tqdm

    class _Tqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["file"] = io.StringIO()  # no terminal output; the caller renders progress
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            out = super().update(n)
            if self.unit == "B" and self.total:
                progress(min(1.0, self.n / self.total), f"{self.n / 1e6:.1f} of {self.total / 1e6:.1f} MB")
            return out

    return _Tqdm


def _with_progress(fetch: Callable, progress: Progress):
    """Run ``fetch(tqdm_class=...)`` in a worker thread and call ``progress`` on THIS thread.

    The client reports progress from its own download threads; UIs (Streamlit) may only be touched from the thread
    that runs them, so the updates are queued and replayed here.
    """
    events: queue.Queue = queue.Queue()
    result: dict = {}

    def work() -> None:
        try:
            result["value"] = fetch(tqdm_class=_progress_tqdm(lambda f, text: events.put((f, text))))
        except BaseException as err:  # noqa: BLE001 - re-raised on the calling thread below
            result["error"] = err
        finally:
            events.put(None)

    worker = threading.Thread(target=work, name="temzoo-download", daemon=True)
    worker.start()
    while (item := events.get()) is not None:
        progress(*item)
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def fetch_snapshot(repo_id: str, revision: str | None = None, progress: Progress | None = None,
                   allow_patterns: list[str] = ALLOW_PATTERNS) -> Path:
    """The files of ``repo_id`` matching ``allow_patterns`` (never pickles) in the HF cache: downloaded, unless a
    complete earlier download is cached (then no network at all). The caller checks which files it needs."""
    from huggingface_hub import snapshot_download

    validate_repo_id(repo_id)
    cached = cached_snapshot(repo_id, revision)
    if cached is not None:
        # Cached wins: loading stays offline-fast and reproducible (delete the cache entry to refresh).
        return cached
    if not network.online():
        raise ModelError(f"{repo_id} is not in the local cache and the Hub is unreachable; connect and retry")

    def fetch(tqdm_class=None) -> str:
        # No progress callback: no bars either (a command's stderr stays its own progress bar and one-line errors).
        return snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns, etag_timeout=5,
                                 tqdm_class=tqdm_class or _progress_tqdm(lambda f, text: None))

    try:
        return Path(_with_progress(fetch, progress) if progress else fetch())
    except _client_errors() as err:
        raise _hub_error(err, f"cannot download {repo_id}") from None


def download(repo_id: str, revision: str | None = None, progress: Progress | None = None) -> Path:
    """Download (or find in the cache) a checkpoint from the Hub; safetensors/json/md only. Returns its folder."""
    p = fetch_snapshot(repo_id, revision, progress)
    if not (p / WEIGHTS_FILE).is_file() or not (p / CONFIG_FILE).is_file():
        raise ModelError(f"{repo_id} on the Hub has no {WEIGHTS_FILE} + {CONFIG_FILE}; it is not an smp checkpoint")
    if progress:
        progress(1.0, "downloaded")
    return p


def get_token() -> str | None:
    """The Hub token from ``$HF_TOKEN`` or the login; only ever passed to the client."""
    from huggingface_hub import get_token as _get

    try:
        return _get()
    except Exception:  # noqa: BLE001 - a broken token file means "no token", not a crash
        return None


def has_token() -> bool:
    return bool(get_token())


def prepare_push_folder(folder: str | Path, repo_id: str, dest: Path) -> Path:
    """Copy the checkpoint's files into ``dest``, re-validate them, write the card; returns ``dest``.

    Only the checkpoint files are copied (no stray files, never pickles). The card is kept when it is a valid temzoo
    card (the user may have edited it on the Share page), else rendered from ``temzoo.json``.
    """
    from temzoo.zoo.cards import card_is_valid, render_card

    folder = Path(folder)
    ckpt = load_checkpoint(folder)  # refuses pickles, checks config + weights load
    dest.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE, META_FILE):
        if (folder / name).is_file():
            shutil.copyfile(folder / name, dest / name)
    load_checkpoint(dest)  # the copy is what gets pushed: validate it, not the original
    card = (folder / CARD_FILE).read_text(encoding="utf-8") if (folder / CARD_FILE).is_file() else ""
    if not card_is_valid(card):
        params = sum(p.numel() for p in ckpt.model.parameters())
        card = render_card(read_meta(folder), ckpt.spec, model_id=repo_id.split("/")[-1], repo_id=repo_id,
                           params=params)
    (dest / CARD_FILE).write_text(card, encoding="utf-8")
    return dest


def push(folder: str | Path, repo_id: str, private: bool = False, message: str | None = None) -> str:
    """Push a checkpoint folder to ``repo_id`` as one commit; returns the commit URL."""
    validate_repo_id(repo_id)
    folder = Path(folder)
    token = get_token()
    if not token:
        raise ModelError("no Hugging Face token: set HF_TOKEN or run 'hf auth login', then push again")
    if not network.online():
        raise ModelError(f"the Hub ({network.endpoint()}) is unreachable; connect and push again")
    from huggingface_hub import HfApi, ModelCard

    from temzoo.zoo.checkpoint import refuse_pickles

    if not folder.is_dir():
        raise ModelError(f"checkpoint folder {folder} does not exist; check the path")
    refuse_pickles(folder)
    api = HfApi(token=token)
    try:
        api.whoami()  # a refused token fails here, before any work or any repo is created
    except _client_errors() as err:
        raise _hub_error(err, "cannot log in to the Hub") from None
    with tempfile.TemporaryDirectory(prefix="temzoo-push-") as tmp:
        stage = prepare_push_folder(folder, repo_id, Path(tmp) / "stage")
        try:
            ModelCard((stage / CARD_FILE).read_text(encoding="utf-8")).validate(repo_type="model")
        except ValueError as err:
            raise ModelError(f"the Hub rejects the card of {folder}: {' '.join(str(err).split())[:200]}") from None
        except _client_errors() as err:
            raise _hub_error(err, "cannot validate the model card") from None
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            info = api.upload_folder(
                repo_id=repo_id, folder_path=stage, repo_type="model",
                commit_message=message or f"Upload {folder.name} with temzoo",
                allow_patterns=list(PUSH_FILES),
            )
        except _client_errors() as err:
            raise _hub_error(err, f"cannot push to {repo_id}") from None
    return str(getattr(info, "commit_url", "") or f"{network.endpoint()}/{repo_id}")
