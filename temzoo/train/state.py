"""Resume state (``workdir/last/``): weights and optimizer tensors in safetensors, everything else in JSON.

Written atomically: a complete temporary sibling folder replaces the old one by rename, so a SIGKILL at any moment
leaves either the previous state or the new one. (Between the two renames of the swap the previous folder sits
under ``.last.old-<pid>``; :func:`find_state` recovers it.) No pickles anywhere.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from temzoo.errors import JobError

MODEL = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
STATE = "state.json"


def atomic_dir(dst: Path, fill) -> Path:
    """Create ``dst`` by calling ``fill(tmp_folder)`` and renaming it into place (replacing an old ``dst``)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    try:
        fill(tmp)
        old = None
        if dst.exists():
            old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old, ignore_errors=True)
            os.replace(dst, old)
        os.replace(tmp, dst)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        from temzoo.zoo.checkpoint import is_disk_full

        if not isinstance(err, OSError) and is_disk_full(err):  # safetensors wraps ENOSPC in SafetensorError
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst)) from None
        raise
    return dst


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file via a temporary file + rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cpu(t: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU snapshot of ``t`` in one copy (later in-place updates of ``t`` do not reach it); the former
    ``.to("cpu").contiguous().clone()`` made three of a channels-last GPU weight at every epoch."""
    return torch.empty(t.shape, dtype=t.dtype, device="cpu").copy_(t.detach())


def _finite_json(payload: dict[str, Any]) -> str:
    """JSON text without NaN/inf (issue #12: never persist a non-finite number): a diverged score becomes null."""
    import math

    from temzoo.io.writers import _jsonable

    def scalar(x: Any) -> float | None:  # tensors and other number-likes the optimizer state holds
        v = float(x)
        return v if math.isfinite(v) else None

    return json.dumps(_jsonable(payload), indent=1, default=scalar, allow_nan=False)


def save_state(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: dict[str, Any]) -> Path:
    """Write weights, optimizer moments and ``info`` (epoch, step, seconds, best score, ...) atomically."""
    from safetensors.torch import save_file

    weights = {k: _cpu(v) for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in opt["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{idx}/{key}"] = _cpu(val)
            else:
                scalars.setdefault(str(idx), {})[key] = val
    payload = {"info": info, "param_groups": opt["param_groups"], "optimizer_scalars": scalars}

    def fill(tmp: Path) -> None:
        save_file(weights, str(tmp / MODEL))
        save_file(tensors, str(tmp / OPTIMIZER))
        (tmp / STATE).write_text(_finite_json(payload))

    return atomic_dir(folder, fill)


def find_state(workdir: Path) -> Path | None:
    """``workdir/last`` if complete, else a complete leftover ``.last.old-*`` from a swap cut short, else None."""
    cands = [workdir / "last"] + sorted(workdir.glob(".last.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for c in cands:
        if all((c / f).is_file() for f in (MODEL, OPTIMIZER, STATE)):
            return c
    return None


def load_state(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    """Restore weights (and optimizer moments) saved by :func:`save_state`; returns ``info``."""
    from safetensors.torch import load_file

    try:
        payload = json.loads((folder / STATE).read_text())
        model.load_state_dict(load_file(str(folder / MODEL), device="cpu"), strict=True)
        if optimizer is not None:
            tensors = load_file(str(folder / OPTIMIZER), device="cpu")
            state: dict[int, dict[str, Any]] = {}
            for key, val in tensors.items():
                idx, name = key.split("/", 1)
                state.setdefault(int(idx), {})[name] = val
            for idx, sc in payload.get("optimizer_scalars", {}).items():
                state.setdefault(int(idx), {}).update(sc)
            optimizer.load_state_dict({"state": state, "param_groups": payload["param_groups"]})
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        msg = " ".join(str(err).split())[:200]
        raise JobError(f"cannot resume from {folder}: {msg}; start the job again without resuming") from None
    return payload["info"]
