"""Fault injection for job tests: wrappers around the real train() that fail the way a GPU does."""

from __future__ import annotations


def oom_above_batch_1(config, workdir, log=None, **kw):
    """Raise CUDA's out-of-memory error while the batch is larger than 1, then train for real."""
    import torch

    from temzoo.train.loop import train

    if config.batch_size > 1:
        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 2.00 GiB (batch {config.batch_size})")
    return train(config, workdir, log=log, **kw)


def always_oom(config, workdir, **kw):
    import torch

    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
