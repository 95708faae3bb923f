"""Batch page helpers: where uploads and batch jobs live in this session, and how a job is named in the picker."""

from __future__ import annotations

import secrets
from pathlib import Path

from temzoo.train import jobs
from ui import session


def jobs_root() -> Path:
    """Batch jobs of this session; apart from the training jobs, so the Fine-tune page never lists them."""
    return session.session_dir() / "batch-jobs"


def keep_uploads(files) -> Path:
    """Copies of the uploaded files (named after them) in a new folder of this session: the batch's input."""
    from temzoo.io import safe_filename

    d = session.session_dir() / "batch-uploads" / secrets.token_hex(4)
    d.mkdir(parents=True)
    for f in files:
        (d / safe_filename(f.name)).write_bytes(f.getvalue())
    return d


def batch_jobs() -> list[str]:
    """This session's batch job folders, newest first."""
    return [s.dir for s in reversed(jobs.list_jobs(jobs_root())) if s.kind == "batch"]


def label(d: str) -> str:
    s = jobs.describe(d)
    n = len(jobs.read_config(d).get("inputs") or [])
    return f"{s.name} · {n} input(s)"

