"""The one out-of-memory policy of training: halve the batch and go on; at batch size 1, stop with one line.

The trainer applies it to a step that ran out of memory (the step is retried at once); the job worker applies it
to a whole ``train()`` call that did (the job resumes from its last epoch with the smaller batch).
"""

from __future__ import annotations

from collections.abc import Callable

from temzoo.errors import JobError


def is_oom(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, a CPU MemoryError, or a RuntimeError saying "out of memory" (other backends)."""
    if isinstance(err, MemoryError):
        return True
    try:
        import torch

        if isinstance(err, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:
        pass
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def free_device_memory() -> None:
    """Hand the CUDA cache back after a failed allocation (nothing to do on the CPU)."""
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def smaller_batch(batch_size: int, device: str, log: Callable[[str], None]) -> int:
    """The batch size to retry with after running out of memory at ``batch_size`` on ``device`` (``cpu``,
    ``cuda`` or a described device); raises :class:`JobError` when it is already 1."""
    free_device_memory()
    if batch_size <= 1:
        fix = "close other programs" if str(device).startswith("cpu") else "the CPU"  # "use the CPU" is no help on one
        raise JobError(f"out of memory even at batch size 1 on {device}; use a smaller tile size or {fix}")
    new = max(1, batch_size // 2)
    log(f"out of memory at batch size {batch_size}; retrying with {new}")
    return new
