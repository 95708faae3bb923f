"""The one out-of-memory policy (temzoo.train.oom): the trainer and the job worker both halve through it."""

from __future__ import annotations

import pytest
import torch

from temzoo.errors import JobError
from temzoo.train import jobs, loop
from temzoo.train.oom import is_oom, smaller_batch


def test_out_of_memory_kinds():
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_oom(MemoryError("Unable to allocate 8 GiB"))
    assert is_oom(RuntimeError("MPS backend out of memory"))
    assert not is_oom(RuntimeError("shape mismatch")) and not is_oom(ValueError("out of memory"))


def test_halves_then_stops_at_one_with_one_line():
    lines: list[str] = []
    assert smaller_batch(5, "cpu", lines.append) == 2
    assert lines == ["out of memory at batch size 5; retrying with 2"]
    with pytest.raises(JobError, match=r"^out of memory even at batch size 1 on cuda \(.*\); use a smaller tile size"
                                       r" or the CPU$"):
        smaller_batch(1, "cuda (NVIDIA H100, 80 GiB)", lines.append)
    with pytest.raises(JobError, match="close other programs"):
        smaller_batch(1, "cpu", lines.append)


def test_trainer_and_worker_share_the_policy():
    assert loop.smaller_batch is smaller_batch and jobs.smaller_batch is smaller_batch
    assert not hasattr(jobs, "_is_oom") and not hasattr(loop, "_oom_types")
