"""Choosing where to compute: CUDA when present (bf16 autocast there), CPU otherwise."""

from __future__ import annotations


def pick_device(preference: str = "auto"):
    """``auto`` -> CUDA if available else CPU; ``cuda`` without a GPU raises a clear error."""
    import torch

    from temzoo.errors import TemzooError

    if preference not in {"auto", "cpu", "cuda"}:
        raise TemzooError(f"unknown device {preference!r}; use auto, cpu or cuda")
    if preference == "cuda" and not torch.cuda.is_available():
        raise TemzooError("no CUDA GPU is available here; use --device cpu or auto")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def describe_device() -> str:
    """One line for the sidebar/logs, e.g. ``cuda (NVIDIA H100, 80 GB)`` or ``cpu (2 threads)``."""
    import torch

    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return f"cuda ({p.name}, {p.total_memory / 2**30:.0f} GiB)"
    return f"cpu ({torch.get_num_threads()} threads)"
