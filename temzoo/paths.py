"""Where temzoo keeps the user's files: ``$TEMZOO_HOME`` (default ``~/.temzoo``) with ``zoo/`` and ``jobs/``.

Read at call time, never at import, so tests and several app instances can point it elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

def home() -> Path:
    return Path(os.environ.get("TEMZOO_HOME") or Path.home() / ".temzoo")


def local_zoo_dir() -> Path:
    """The user's own checkpoints (fine-tuned results), one folder each."""
    return home() / "zoo"


def jobs_dir() -> Path:
    """Background job folders (config, metrics.jsonl, checkpoints, status)."""
    return home() / "jobs"


def bundled_zoo_dir() -> Path:
    """Checkpoints shipped with the package (``temzoo/zoo/bundled/``, package data: found where temzoo is installed)."""
    return Path(__file__).resolve().parent / "zoo" / "bundled"


def shared_data_dir() -> Path | None:
    """``$TEMZOO_SHARED_DATA``, else ``../shared/data`` beside the folder the app or script runs in (a checkout
    beside the shared data); None if absent."""
    p = Path(os.environ.get("TEMZOO_SHARED_DATA") or Path.cwd().parent / "shared" / "data")
    return p if p.is_dir() else None
