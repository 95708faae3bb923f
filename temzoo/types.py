"""Plain data objects passed between readers, models, the CLI and the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Micrograph:
    """One real-space image (or stack of frames) with its calibration.

    ``data`` is float32, shape ``(H, W)`` or ``(frames, H, W)``. Large stacks may hold a lazy (dask) array; use
    :meth:`frame` to get one frame as a NumPy array. ``pixel_size_nm`` is ``None`` when the file carries no usable
    spatial calibration.
    """

    data: Any
    pixel_size_nm: float | None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    index: int = 0
    title: str = ""
    original_dtype: str = "float32"
    reciprocal: bool = False

    @property
    def calibrated(self) -> bool:
        return self.pixel_size_nm is not None

    @property
    def n_frames(self) -> int:
        return int(self.data.shape[0]) if self.data.ndim == 3 else 1

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one frame ``(H, W)``."""
        return tuple(int(s) for s in self.data.shape[-2:])  # type: ignore[return-value]

    def frame(self, i: int = 0) -> np.ndarray:
        """Frame ``i`` as a float32 NumPy array (computes lazy data)."""
        if self.data.ndim == 2:
            if i != 0:
                raise IndexError(f"frame {i} requested from a single image")
            arr = self.data
        else:
            if not 0 <= i < self.n_frames:
                raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
            arr = self.data[i]
            if hasattr(arr, "compute"):  # one dask frame, in this thread: a process without a dask thread pool
                arr = arr.compute(scheduler="synchronous")  # can fork the next untrusted parse (io/untrusted.py)
        return np.asarray(arr, dtype=np.float32)

    def with_data(self, data: np.ndarray, pixel_size_nm: float | None = None) -> Micrograph:
        """A copy holding new data (e.g. one frame, or a resampled image); calibration kept unless given."""
        return Micrograph(
            data=data,
            pixel_size_nm=self.pixel_size_nm if pixel_size_nm is None else pixel_size_nm,
            metadata=dict(self.metadata),
            source=self.source,
            index=self.index,
            title=self.title,
            original_dtype=self.original_dtype,
            reciprocal=self.reciprocal,
        )


    def with_pixel_size(self, pixel_size_nm: float | None) -> Micrograph:
        """The same image at a pixel size a person gave (for uncalibrated files, or to override the file's);
        ``None`` returns ``self``. The file's own value is kept in ``metadata['file_pixel_size_nm']``."""
        if pixel_size_nm is None:
            return self
        from temzoo.io.units import check_pixel_size

        out = self.with_data(self.data, pixel_size_nm=check_pixel_size(pixel_size_nm))
        out.metadata.setdefault("file_pixel_size_nm", self.pixel_size_nm)
        out.metadata["pixel_size_source"] = "given"
        out.metadata.pop("calibration_note", None)
        return out


@dataclass
class Prediction:
    """What a model says about one frame, on the micrograph's own pixel grid.

    ``mask`` holds class indices (0 = background); ``probability`` is the foreground probability for binary models
    or ``(C, H, W)`` class probabilities; ``confidence`` is in 0..1 (max-probability unless stated otherwise);
    ``maps`` holds extra per-pixel maps (entropy, TTA spread, MC mutual information, importance, ...).
    """

    mask: np.ndarray
    probability: np.ndarray
    confidence: np.ndarray
    pixel_size_nm: float | None
    resampled_to_nm: float | None
    model_id: str = ""
    seconds: float = 0.0
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
