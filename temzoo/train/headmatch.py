"""Class-matched head: start a binary fine-tune from the base's class that already finds the labelled structure.

A multi-class base (the generalist: one class per kind of structure) fine-tuned for a binary task used to get a fresh,
random head, throwing away the part of the base that knows *which* structure is which. Here the base is run on the
labelled training images (never on validation or test images), each of its foreground classes is scored against
the masks by pooled pixel F1 (argmax == class), and the best one seeds the binary head: ``w = w_c - w_0``,
``b = b_c - b_0``, so ``sigmoid(z_c - z_0)`` is the base's own two-class probability of class ``c`` against
background. A class is used only when it beats the trivial "everything is foreground" answer on the same pixels;
otherwise the head stays random, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from temzoo.metrics import PixelCounts, pixel_counts

HEAD_CONV = "segmentation_head.0"  # smp's SegmentationHead: Sequential(conv2d, upsampling, activation)


@dataclass(frozen=True)
class HeadMatch:
    """The base class chosen for the binary head and how well it matched the labelled images."""

    index: int
    name: str
    f1: float
    trivial_f1: float

    def note(self) -> str:
        return (f"binary head initialised from the base's class '{self.name}' (pixel F1 {self.f1:.2f} on the "
                f"labelled training images, against {self.trivial_f1:.2f} for 'all foreground')")


def class_scores(logits: list[np.ndarray], masks: list[np.ndarray]) -> tuple[list[float], float]:
    """Pooled pixel F1 of each class's argmax map against ``masks > 0`` (index 0, the background, scores 0.0), and
    of the trivial answer "everything is foreground" on the same pixels.

    ``logits``: per image ``(C, H, W)`` class scores, logits or probabilities (only their argmax counts)."""
    n = logits[0].shape[0] if logits else 0
    trivial = PixelCounts()
    per_class = [PixelCounts() for _ in range(n)]
    for lg, m in zip(logits, masks):
        fg = (m > 0).astype(np.float32)
        trivial = trivial + pixel_counts(np.ones_like(fg), fg)
        arg = lg.argmax(0)
        for c in range(1, n):
            per_class[c] = per_class[c] + pixel_counts((arg == c).astype(np.float32), fg)
    f1s = [0.0] + [float(per_class[c].scores()["f1"] or 0.0) for c in range(1, n)]
    return f1s[:n], float(trivial.scores()["f1"] or 0.0)


def match_class(logits: list[np.ndarray], masks: list[np.ndarray], names: list[str]) -> HeadMatch | None:
    """The foreground class whose argmax map best matches ``masks`` (pooled pixel F1), or None if none is useful.

    ``logits``: per image ``(C, H, W)`` class scores, logits or probabilities (only their argmax counts)."""
    if not logits or logits[0].shape[0] < 2:
        return None
    f1s, trivial_f1 = class_scores(logits, masks)
    best = int(np.argmax(f1s[1:])) + 1
    if f1s[best] <= trivial_f1:
        return None
    name = names[best] if best < len(names) else f"class {best}"
    return HeadMatch(index=best, name=name, f1=float(f1s[best]), trivial_f1=float(trivial_f1))


def binary_head_state(base_state: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """The binary head's weight and bias as the difference of class ``index`` and background in the base's head."""
    w, b = base_state[f"{HEAD_CONV}.weight"], base_state[f"{HEAD_CONV}.bias"]
    return {f"{HEAD_CONV}.weight": (w[index] - w[0])[None].clone(),
            f"{HEAD_CONV}.bias": (b[index] - b[0]).reshape(1).clone()}
