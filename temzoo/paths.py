"""Where temzoo keeps the user's files: ``$TEMZOO_HOME`` (default ``~/.temzoo``) with ``zoo/`` and ``jobs/``.

Read at call time, never at import, so tests and several app instances can point it elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    return Path(os.environ.get("TEMZOO_HOME") or Path.home() / ".temzoo")


def local_zoo_dir() -> Path:
    """The user's own checkpoints (fine-tuned results), one folder each."""
    return home() / "zoo"


def jobs_dir() -> Path:
    """Background job folders (config, metrics.jsonl, checkpoints, status)."""
    return home() / "jobs"


def bundled_zoo_dir() -> Path:
    """Checkpoints shipped in the repository."""
    return REPO_ROOT / "zoo"


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the checkout (real test/demo data), or ``$TEMZOO_SHARED_DATA``; None if absent."""
    p = Path(os.environ.get("TEMZOO_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")
    return p if p.is_dir() else None
