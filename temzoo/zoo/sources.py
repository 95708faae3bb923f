"""Resolving ``--model`` references (provisional: folders only; the zoo issue adds ids, cache and Hub)."""

from __future__ import annotations

from pathlib import Path

from temzoo.errors import ModelError
from temzoo.zoo.checkpoint import Checkpoint, load_checkpoint


def load_model(ref: str) -> Checkpoint:
    """Load a checkpoint from a zoo id, a local folder or a Hub repo id."""
    p = Path(ref).expanduser()
    if p.is_dir():
        return load_checkpoint(p, model_id=str(ref))
    raise ModelError(f"unknown model {ref!r}: give a checkpoint folder or a zoo id from 'python -m temzoo zoo list'")
