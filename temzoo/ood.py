"""Out-of-distribution score: how unlike the model's training images is this one, seen through the model's own eyes.

A micrograph of another kind (a continuous crystal given to a nanoparticle model) can come out as a confident mask.
Per-pixel confidence does not see that; the encoder's deepest features do. At training time we record, per feature
channel, the mean and spread over the training images of two statistics of the deepest encoder map (its spatial mean
and its spatial standard deviation, per 128 px tile of the model grid). A new image's score is the root-mean-square
z-score of its tiles against that reference (median over tiles): about 1 on images like the training set.

The warning threshold is fixed from the training and validation images only (never test images):
``MARGIN x max(score over the training and validation images)``. It is stored with the reference in
``temzoo.json`` (``provenance.ood``), so predict, the app and the benchmark all use the same number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

TILE = 128  # model-grid pixels per tile (the deepest map of a depth-3 U-Net is 16 x 16 of it)
MAX_TILES = 64  # evenly spread tiles per image (CPU time on large images)
MARGIN = 1.5  # threshold = MARGIN x the largest training/validation image score
SCALE_FLOOR = 0.1  # per-channel spread floored at this fraction of the median spread (near-constant channels)
FEATURE = "deepest encoder map: per-channel spatial mean and std per 128 px tile"


@dataclass
class OODReference:
    """What the model's deepest features looked like on its training images, and the warning threshold."""

    mean: list[float]
    scale: list[float]
    threshold: float
    feature: str = FEATURE
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"] = [round(float(v), 6) for v in self.mean]
        d["scale"] = [round(float(v), 6) for v in self.scale]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> OODReference | None:
        if not isinstance(d, dict) or "mean" not in d or "scale" not in d or "threshold" not in d:
            return None
        return cls(list(d["mean"]), list(d["scale"]), float(d["threshold"]), d.get("feature", FEATURE),
                   dict(d.get("calibration") or {}))


@dataclass
class OODScore:
    score: float
    threshold: float
    tiles: int

    @property
    def shifted(self) -> bool:
        return self.score > self.threshold

    def line(self) -> str:
        return (f"this image looks unlike the model's training images (domain-shift score {self.score:.2f}, "
                f"warning above {self.threshold:.2f}, set on its training and validation images): check the mask "
                "by eye or against a few labels before trusting its numbers")


def _tiles(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    h, w = image.shape
    th, tw = min(TILE, h), min(TILE, w)
    ys = list(range(0, h - th + 1, th)) or [0]
    xs = list(range(0, w - tw + 1, tw)) or [0]
    boxes = [(y, x, th, tw) for y in ys for x in xs]
    if len(boxes) > MAX_TILES:
        keep = np.linspace(0, len(boxes) - 1, MAX_TILES).round().astype(int)
        boxes = [boxes[i] for i in keep]
    return boxes


def tile_features(model, image: np.ndarray, device: str = "cpu") -> np.ndarray:
    """``(tiles, 2C)`` features of one normalised model-grid image: per-channel mean and std of the deepest
    encoder map of each tile (tiles padded to a multiple of 32 by reflection)."""
    import torch

    x = np.asarray(image, np.float32)
    feats = []
    enc = model.encoder
    was_training = enc.training
    enc.eval()
    try:
        with torch.inference_mode():
            for y, x0, th, tw in _tiles(x):
                t = x[y:y + th, x0:x0 + tw]
                ph, pw = (-th) % 32, (-tw) % 32
                if ph or pw:
                    t = np.pad(t, ((0, ph), (0, pw)), mode="reflect" if min(th, tw) > max(ph, pw) else "edge")
                deep = enc(torch.from_numpy(np.ascontiguousarray(t))[None, None].to(device))[-1][0].float()
                flat = deep.flatten(1)
                feats.append(torch.cat([flat.mean(1), flat.std(1)]).cpu().numpy())
    finally:
        enc.train(was_training)
    return np.stack(feats).astype(np.float64)


def score_features(ref: OODReference, feats: np.ndarray) -> float:
    """Median over tiles of the largest absolute z-score over the feature channels.

    The largest, not the root-mean-square: an image of another kind (a continuous crystal for a nanoparticle
    model) drives a few channels far out of their training range while most stay typical, and an average over
    256 channels hides it (measured in bench/bench_ood.py: the RMS missed the SrTiO3 crystal, the maximum does not).
    """
    z = np.abs((feats - np.asarray(ref.mean)) / np.asarray(ref.scale))
    return float(np.median(z.max(axis=1)))


def fit_reference(model, train_images: list[np.ndarray], val_images: list[np.ndarray], device: str = "cpu",
                  margin: float = MARGIN, source: str = "") -> OODReference:
    """The reference from the training images' tiles; the threshold from training and validation image scores."""
    from temzoo.errors import DataError

    if not train_images:
        raise DataError("no training images to describe; the domain-shift reference needs at least one")
    per_image = [tile_features(model, im, device) for im in train_images]
    allf = np.concatenate(per_image)
    mean = allf.mean(0)
    sd = allf.std(0)
    scale = np.sqrt(sd ** 2 + (SCALE_FLOOR * max(float(np.median(sd)), 1e-6)) ** 2)
    ref = OODReference(mean.tolist(), scale.tolist(), threshold=0.0)
    train_scores = [score_features(ref, f) for f in per_image]
    val_scores = [score_features(ref, tile_features(model, im, device)) for im in val_images]
    top = max(train_scores + val_scores)
    ref.threshold = float(margin * top)
    ref.calibration = {
        "rule": f"{margin:g} x the largest training/validation image score", "margin": margin,
        "n_train_images": len(train_images), "n_val_images": len(val_images), "n_train_tiles": int(len(allf)),
        "train_score_max": round(max(train_scores), 4), "train_score_median": round(float(np.median(train_scores)), 4),
        "val_score_max": round(max(val_scores), 4) if val_scores else None,
        "source": source,
    }
    return ref


def reference_of(checkpoint) -> OODReference | None:
    """The reference stored in a checkpoint's ``temzoo.json`` (``provenance.ood``), or None."""
    return OODReference.from_dict((checkpoint.meta.provenance or {}).get("ood"))


def score_prepared(checkpoint, image: np.ndarray, device: str = "cpu") -> OODScore | None:
    """Score a normalised model-grid image (from :func:`temzoo.predict.prepare_input`); None without a reference."""
    ref = reference_of(checkpoint)
    if ref is None:
        return None
    feats = tile_features(checkpoint.model, image, device)
    return OODScore(score_features(ref, feats), ref.threshold, len(feats))


def score_image(checkpoint, micrograph, frame: int = 0) -> OODScore | None:
    """Score one frame as the model would see it (resampled and normalised like in predict)."""
    from temzoo.predict import prepare_input

    prep = prepare_input(checkpoint, micrograph, frame, any_task=True)
    return score_prepared(checkpoint, prep.image)


__all__ = ["MARGIN", "OODReference", "OODScore", "fit_reference", "reference_of", "score_features", "score_image",
           "score_prepared", "tile_features"]
