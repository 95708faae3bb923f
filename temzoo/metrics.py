"""Numbers beside the maps: pixel and object metrics against a mask, annotation-free counts, particle tables,
and a per-image domain-shift check.

Pixel scores use segmentation-models-pytorch's metrics (confusion counts pooled over images, "micro" reduction);
objects and the particle table use scikit-image (``label``, ``regionprops``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from temzoo.errors import DataError

MIN_AREA_PX = 5  # smaller connected components are noise, not particles
KINDS = ("objects", "network")  # a class is separate objects (particles, bubbles, loops) or a network (boundaries)
NETWORK_SPAN = 0.5  # a mask whose largest component spans this share of both image sides is a network


def class_kind(meta) -> str:
    """The kind of a checkpoint's (first) foreground class from its temzoo.json; objects when not recorded."""
    kinds = getattr(meta, "class_kinds", None) or []
    return kinds[0] if kinds and kinds[0] in KINDS else "objects"


def guess_kind(masks: list[np.ndarray]) -> str:
    """objects or network from labelled masks: a network's largest piece spans the field (most masks say so)."""
    from skimage import measure

    votes = 0
    for m in masks:
        fg = np.asarray(m) > 0
        if not fg.any():
            continue
        lab = measure.label(fg, connectivity=2)
        big = max(measure.regionprops(lab), key=lambda r: r.area)
        y0, x0, y1, x1 = big.bbox
        h, w = fg.shape
        votes += 1 if ((y1 - y0) >= NETWORK_SPAN * h and (x1 - x0) >= NETWORK_SPAN * w) else -1
    return "network" if votes > 0 else "objects"


# ------------------------------------------------------------------------------------------------------ pixel metrics
@dataclass
class PixelCounts:
    """Confusion counts of the foreground class (add them to pool several images)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @classmethod
    def of(cls, counts) -> PixelCounts:
        """From a ``[tp, fp, fn, tn]`` tensor (:func:`confusion_counts`; one copy off its device)."""
        return cls(*(int(v) for v in counts.tolist()))

    def __add__(self, other: PixelCounts) -> PixelCounts:
        return PixelCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    def scores(self) -> dict[str, float]:
        """IoU, Dice, precision, recall, F1 (pixel F1 == Dice for a binary mask) via smp.metrics."""
        import segmentation_models_pytorch as smp
        import torch

        tp, fp, fn, tn = (torch.tensor([[v]], dtype=torch.long) for v in (self.tp, self.fp, self.fn, self.tn))
        # zero_division=1: no foreground predicted and none labelled is a perfect score, not NaN. One image of one
        # class, so "micro-imagewise" is "micro"; smp applies zero_division only to the imagewise reductions.
        kw = {"reduction": "micro-imagewise", "zero_division": 1.0}
        f1 = float(smp.metrics.f1_score(tp, fp, fn, tn, **kw))
        return {
            "iou": float(smp.metrics.iou_score(tp, fp, fn, tn, **kw)),
            "dice": f1,
            "f1": f1,
            "precision": float(smp.metrics.precision(tp, fp, fn, tn, **kw)),
            "recall": float(smp.metrics.recall(tp, fp, fn, tn, **kw)),
        }


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape[-2:] != truth.shape:
        raise DataError(f"mask shape {truth.shape} differs from the prediction's {pred.shape[-2:]}; "
                        "give a mask of the image's size")


def confusion_counts(probability, truth, threshold: float = 0.5):
    """Foreground confusion counts ``[tp, fp, fn, tn]`` (an int64 tensor on the inputs' device; no wait on it): the
    one pixel-count rule behind ``evaluate`` (:func:`pixel_counts`) and training's validation.

    ``probability``: a foreground probability map ``(H, W)`` (or a 0/1 mask), foreground where >= ``threshold``,
    scored against ``truth > 0``; or class probabilities ``(C, H, W)``: the argmax class, each foreground class
    ``1..C-1`` scored against ``truth == c`` and the counts pooled. ``truth``: an integer label tensor ``(H, W)``.
    """
    import segmentation_models_pytorch as smp
    import torch

    if probability.ndim == 2:
        out, tgt = probability.float()[None, None], (truth > 0).long()[None, None]
        stats = smp.metrics.get_stats(out, tgt, mode="binary", threshold=threshold)
    else:
        classes = torch.arange(1, probability.shape[0], device=probability.device)[:, None, None]
        out = (probability.argmax(0)[None] == classes).long()[None]
        tgt = (truth.long()[None] == classes).long()[None]
        stats = smp.metrics.get_stats(out, tgt, mode="multilabel")
    return torch.stack([v.sum() for v in stats])


def pixel_counts(probability: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> PixelCounts:
    """:func:`confusion_counts` of NumPy arrays, as :class:`PixelCounts`."""
    import torch

    p = np.ascontiguousarray(probability, dtype=np.float32)
    t = np.asarray(truth)
    _check_pair(p, t)
    t = (t > 0) if p.ndim == 2 else t  # a float mask: any positive value is foreground, as before
    counts = confusion_counts(torch.from_numpy(p), torch.from_numpy(t.astype(np.int64)), threshold)
    return PixelCounts.of(counts)


# ----------------------------------------------------------------------------------------------------- object metrics
def label_objects(mask: np.ndarray, min_area_px: int = MIN_AREA_PX) -> np.ndarray:
    """Connected foreground components (8-connectivity) with tiny ones removed; int32 labels."""
    from skimage import measure, morphology

    m = np.asarray(mask) > 0
    if min_area_px > 1:
        m = morphology.remove_small_objects(m, max_size=min_area_px - 1) if _new_skimage() else \
            morphology.remove_small_objects(m, min_size=min_area_px)
    return measure.label(m, connectivity=2).astype(np.int32)


def _new_skimage() -> bool:
    import inspect

    from skimage import morphology

    return "max_size" in inspect.signature(morphology.remove_small_objects).parameters


@dataclass
class ObjectCounts:
    """Instances matched at IoU >= ``iou_threshold`` (pool by adding)."""

    matched: int = 0
    n_pred: int = 0
    n_true: int = 0
    abs_count_diff: int = 0
    pred_sizes: list[float] = field(default_factory=list)  # equivalent diameters (nm, or px when uncalibrated)
    true_sizes: list[float] = field(default_factory=list)

    def __add__(self, o: ObjectCounts) -> ObjectCounts:
        return ObjectCounts(self.matched + o.matched, self.n_pred + o.n_pred, self.n_true + o.n_true,
                            self.abs_count_diff + o.abs_count_diff, self.pred_sizes + o.pred_sizes,
                            self.true_sizes + o.true_sizes)

    def scores(self) -> dict[str, float]:
        fp = self.n_pred - self.matched
        fn = self.n_true - self.matched
        denom = 2 * self.matched + fp + fn
        return {
            "object_f1": 1.0 if denom == 0 else 2 * self.matched / denom,
            "count_error": self.abs_count_diff / max(self.n_true, 1),  # relative |n_pred - n_true|, per image summed
            "n_pred_objects": self.n_pred,
            "n_true_objects": self.n_true,
            "size_distance": size_distance(self.pred_sizes, self.true_sizes),
        }


def object_counts(pred_mask: np.ndarray, truth: np.ndarray, pixel_size_nm: float | None = None,
                  iou_threshold: float = 0.5, min_area_px: int = MIN_AREA_PX) -> ObjectCounts:
    """Match predicted and labelled instances one-to-one (Hungarian on IoU, kept when IoU >= threshold)."""
    from scipy.optimize import linear_sum_assignment

    pm = np.asarray(pred_mask)
    _check_pair(pm, np.asarray(truth))
    lp = label_objects(pm, min_area_px)
    lt = label_objects(truth, min_area_px)
    n_p, n_t = int(lp.max()), int(lt.max())
    matched = 0
    if n_p and n_t:
        # Contingency table of overlaps via one bincount over label pairs (fast on large images).
        inter = np.bincount(lp.ravel().astype(np.int64) * (n_t + 1) + lt.ravel(),
                            minlength=(n_p + 1) * (n_t + 1)).reshape(n_p + 1, n_t + 1)[1:, 1:]
        ap = np.bincount(lp.ravel(), minlength=n_p + 1)[1:]
        at = np.bincount(lt.ravel(), minlength=n_t + 1)[1:]
        iou = inter / (ap[:, None] + at[None, :] - inter)
        rows, cols = linear_sum_assignment(-iou)
        matched = int((iou[rows, cols] >= iou_threshold).sum())
    scale = pixel_size_nm or 1.0
    return ObjectCounts(matched, n_p, n_t, abs(n_p - n_t), list(_eq_diameters(lp) * scale),
                        list(_eq_diameters(lt) * scale))


def _eq_diameters(labels: np.ndarray) -> np.ndarray:
    """Equivalent diameters (px) of the labelled objects not cut by the image edge (their size is not theirs)."""
    areas = np.bincount(labels.ravel())[1:]
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    keep = np.ones(areas.size, bool)
    keep[border[border > 0] - 1] = False
    return np.sqrt(4 * areas[keep & (areas > 0)] / np.pi)


def size_distance(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float | None:
    """1-D Wasserstein (earth mover's) distance between two size distributions, in their unit; None if one is empty."""
    from scipy.stats import wasserstein_distance

    if len(a) == 0 or len(b) == 0:
        return None
    return float(wasserstein_distance(a, b))


def grain_counts(pred_mask: np.ndarray, truth: np.ndarray, pixel_size_nm: float | None = None) -> dict:
    """A boundary network against a human one: enclosed grains counted in both (Ochoa et al.) and the distance
    between their size distributions (grains cut by the field of view left out of the sizes)."""
    _check_pair(np.asarray(pred_mask), np.asarray(truth))
    tp, tt = grain_table(pred_mask, pixel_size_nm), grain_table(truth, pixel_size_nm)
    dp, dt = interior_diameters(tp, pixel_size_nm), interior_diameters(tt, pixel_size_nm)
    return {"n_pred_grains": int(len(tp)), "n_true_grains": int(len(tt)),
            "grain_count_error": abs(len(tp) - len(tt)) / max(len(tt), 1),
            "pred_sizes": dp.tolist(), "true_sizes": dt.tolist(), "size_distance": size_distance(dp, dt)}


def supervised_metrics(probability: np.ndarray, truth: np.ndarray, pixel_size_nm: float | None = None,
                       threshold: float = 0.5, kind: str = "objects") -> dict:
    """All metrics against one mask (binary models): pixel scores and ECE; for objects object F1, count error and
    the size distance; for a network grain counts and the grain-size distance (no object F1: one network is not
    a set of objects). ``pred_sizes``/``true_sizes`` are the two size distributions (nm, or px)."""
    from temzoo.confidence import reliability

    p = np.asarray(probability)
    if p.ndim != 2:
        raise DataError("supervised metrics are implemented for binary (one-class) models")
    t = np.asarray(truth)
    _check_pair(p, t)
    out = pixel_counts(p, t, threshold).scores()
    if kind == "network":
        out.update(grain_counts(p >= threshold, t, pixel_size_nm))
    else:
        oc = object_counts(p >= threshold, t, pixel_size_nm)
        out.update(oc.scores())
        out.update({"pred_sizes": oc.pred_sizes, "true_sizes": oc.true_sizes})
    out["kind"] = kind
    out["ece"] = reliability(p, t).ece
    return out


# ------------------------------------------------------------------------------------------- annotation-free metrics
PARTICLE_COLUMNS = ["id", "centroid_y_px", "centroid_x_px", "area_px", "area_nm2", "equivalent_diameter_nm",
                    "feret_max_nm", "feret_min_nm", "perimeter_nm", "circularity", "eccentricity", "touches_edge",
                    "mean_confidence"]


def _feret_min(r) -> float:
    """Smallest caliper width of a region (px): its convex hull projected on 180 directions."""
    from skimage import measure

    img = np.pad(r.image_convex, 1)
    c = max(measure.find_contours(img.astype(np.float32), 0.5), key=len, default=None)
    if c is None or len(c) < 3:
        return float(min(r.image.shape))
    t = np.deg2rad(np.arange(180))
    proj = c[:, :1] * np.cos(t)[None] + c[:, 1:] * np.sin(t)[None]
    return float((proj.max(0) - proj.min(0)).min())


def region_table(labels: np.ndarray, confidence: np.ndarray | None = None, pixel_size_nm: float | None = None):
    """One row per labelled region (scikit-image regionprops) as a pandas DataFrame with :data:`PARTICLE_COLUMNS`:
    area, equivalent diameter, Feret diameters (max and min caliper), perimeter, circularity (4 pi A / P^2, 1 for a
    disc), eccentricity, ``touches_edge`` (cut by the field of view: its size is not its real size) and mean
    confidence. nm columns are NaN when uncalibrated."""
    import pandas as pd
    from skimage import measure

    conf = None if confidence is None else np.asarray(confidence, dtype=np.float32)
    if conf is not None and conf.shape != labels.shape:
        raise DataError(f"confidence map shape {conf.shape} differs from the mask's {labels.shape}")
    px = pixel_size_nm if pixel_size_nm else np.nan
    h, w = labels.shape
    rows = []
    for r in measure.regionprops(labels, intensity_image=conf):
        per = float(r.perimeter)
        y0, x0, y1, x1 = r.bbox
        rows.append({
            "id": int(r.label),
            "centroid_y_px": float(r.centroid[0]),
            "centroid_x_px": float(r.centroid[1]),
            "area_px": int(r.area),
            "area_nm2": float(r.area) * px * px,
            "equivalent_diameter_nm": float(r.equivalent_diameter_area) * px,
            "feret_max_nm": float(r.feret_diameter_max) * px,
            "feret_min_nm": _feret_min(r) * px,
            "perimeter_nm": per * px,
            "circularity": float(min(1.0, 4 * np.pi * r.area / per**2)) if per > 0 else 1.0,
            "eccentricity": float(r.eccentricity),
            "touches_edge": bool(y0 == 0 or x0 == 0 or y1 == h or x1 == w),
            "mean_confidence": float(r.intensity_mean) if conf is not None else np.nan,
        })
    return pd.DataFrame(rows, columns=PARTICLE_COLUMNS)


def particle_table(mask: np.ndarray, confidence: np.ndarray | None = None, pixel_size_nm: float | None = None,
                   min_area_px: int = MIN_AREA_PX):
    """One row per connected foreground object (8-connectivity, tiny ones dropped): see :func:`region_table`."""
    return region_table(label_objects(mask, min_area_px), confidence, pixel_size_nm)


def grain_labels(mask: np.ndarray, min_area_px: int = 4 * MIN_AREA_PX) -> np.ndarray:
    """The grains enclosed by a boundary network: the regions between foreground lines (4-connectivity, so a
    diagonal gap in a line does not merge two grains), tiny ones dropped."""
    from skimage import measure, morphology

    between = ~(np.asarray(mask) > 0)
    between = morphology.remove_small_objects(between, max_size=min_area_px - 1) if _new_skimage() else \
        morphology.remove_small_objects(between, min_size=min_area_px)
    return measure.label(between, connectivity=1).astype(np.int32)


def grain_table(mask: np.ndarray, pixel_size_nm: float | None = None):
    """One row per grain of a boundary network (same columns as :func:`particle_table`)."""
    return region_table(grain_labels(mask), None, pixel_size_nm)


def interior_diameters(table, pixel_size_nm: float | None, include_edge: bool = False) -> np.ndarray:
    """Equivalent diameters (nm, or px when uncalibrated) of a region table; regions cut by the field of view are
    left out unless ``include_edge`` (their size is not their real size)."""
    t = table if include_edge else table[~table["touches_edge"].astype(bool)]
    return t["equivalent_diameter_nm"].to_numpy(float) if pixel_size_nm else \
        np.sqrt(4 * t["area_px"].to_numpy(float) / np.pi)


def convex_object_count(mask: np.ndarray, invert: bool = False, tolerance_frac: float = 0.02) -> int:
    """Ochoa et al.'s annotation-free count: open 3x3, clear border, contours, polygon approximation
    (tolerance = 0.02 x perimeter, as ``cv2.approxPolyDP``), count the convex polygons.

    ``invert=True`` counts the regions enclosed by the foreground (grains between predicted boundary lines).
    """
    from skimage import measure, morphology, segmentation

    m = np.asarray(mask) > 0
    if invert:
        m = ~m
    m = morphology.opening(m, np.ones((3, 3), bool))
    m = segmentation.clear_border(m)
    labels = measure.label(m, connectivity=1)
    count = 0
    for r in measure.regionprops(labels):
        sub = np.pad(r.image, 1)  # contours need background all round
        contours = measure.find_contours(sub.astype(np.float32), 0.5)
        if not contours:
            continue
        c = max(contours, key=len)
        perim = float(np.sum(np.hypot(*np.diff(c, axis=0).T)))
        poly = measure.approximate_polygon(c, tolerance=tolerance_frac * perim)
        if _is_convex(poly):
            count += 1
    return count


def _is_convex(poly: np.ndarray) -> bool:
    p = poly[:-1] if len(poly) > 1 and np.allclose(poly[0], poly[-1]) else poly
    if len(p) < 3:
        return False
    d1 = np.roll(p, -1, axis=0) - p
    d2 = np.roll(p, -2, axis=0) - np.roll(p, -1, axis=0)
    cross = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    cross = cross[np.abs(cross) > 1e-9]
    return bool(cross.size) and (bool(np.all(cross > 0)) or bool(np.all(cross < 0)))


def size_histogram(diameters: np.ndarray | list[float], bins: int = 20) -> dict:
    """Histogram of equivalent diameters (counts and edges) for plotting and comparison."""
    d = np.asarray(diameters, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"counts": [], "edges": []}
    counts, edges = np.histogram(d, bins=bins)
    return {"counts": counts.tolist(), "edges": edges.tolist()}


def region_table_for(prediction, kind: str = "objects", min_area_px: int = MIN_AREA_PX):
    """The table the numbers are about: particles (objects) or the grains between boundary lines (network)."""
    if kind == "network":
        return grain_table(prediction.mask, prediction.pixel_size_nm)
    return particle_table(prediction.mask, prediction.confidence, prediction.pixel_size_nm, min_area_px)


def unsupervised_metrics(prediction, uncertain_below: float = 0.8, min_area_px: int = MIN_AREA_PX,
                         kind: str = "objects", include_edge: bool = False, table=None) -> dict:
    """Numbers that need no labels (Ochoa et al.), for the class's kind.

    objects: object count, objects cut by the field of view (left out of the sizes unless ``include_edge``),
    Ochoa's convex-object count, sizes. network: the grains enclosed by the lines (all, and those not cut by the
    field of view), Ochoa's convex-grain count, grain sizes; no object count (a network is one object).
    """
    mask = prediction.mask
    fg = mask > 0
    if table is None:
        table = region_table_for(prediction, kind, min_area_px)
    d = interior_diameters(table, prediction.pixel_size_nm, include_edge)
    n_edge = int(table["touches_edge"].astype(bool).sum()) if len(table) else 0
    out = {
        "kind": kind,
        "foreground_fraction": float(fg.mean()),
        "mean_confidence": float(prediction.confidence.mean()),
        "mean_confidence_foreground": float(prediction.confidence[fg].mean()) if fg.any() else None,
        "uncertain_fraction": float((prediction.confidence < uncertain_below).mean()),
        "uncertain_below": uncertain_below,
        "size_unit": "nm" if prediction.pixel_size_nm else "px",
        "sizes_include_edge": include_edge,
        "median_diameter": float(np.median(d)) if d.size else None,
        "mean_diameter": float(np.mean(d)) if d.size else None,
        "size_histogram": size_histogram(d),
    }
    if kind == "network":
        out.update({"n_grains": int(len(table)), "n_grains_interior": int(len(table)) - n_edge,
                    "convex_grains": convex_object_count(mask, invert=True)})
    else:
        out.update({"n_objects": int(len(table)), "n_edge_objects": n_edge,
                    "convex_objects": convex_object_count(mask)})
    return out


# ----------------------------------------------------------------------------------------------------- domain shift
def spectrum_peaks(image: np.ndarray, pixel_size: float = 1.0, n: int = 3, min_period_px: float = 2.2) -> list[float]:
    """Periods (in the unit of ``pixel_size``) of the strongest peaks of the radially averaged power spectrum.

    The 1/f background of micrographs is removed first (a fit in log-log space), so a peak means a real
    periodicity (lattice fringes, a regular pattern) rather than coarse contrast.
    """
    from scipy.signal import find_peaks

    x = np.asarray(image, dtype=np.float32)
    h, w = x.shape
    s = min(h, w, 1024)
    x = x[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    if s < 16:
        return []
    win = np.hanning(s)[:, None] * np.hanning(s)[None, :]
    ps = np.abs(np.fft.fftshift(np.fft.fft2((x - x.mean()) * win))) ** 2
    yy, xx = np.indices(ps.shape)
    r = np.hypot(yy - s // 2, xx - s // 2).astype(int)
    radial = np.bincount(r.ravel(), ps.ravel()) / np.maximum(np.bincount(r.ravel()), 1)
    k = np.arange(radial.size)
    use = (k >= 3) & (k <= s // 2) & (s / np.maximum(k, 1) >= min_period_px)
    if use.sum() < 8:
        return []
    lk, lp = np.log(k[use]), np.log(radial[use] + 1e-12)
    resid = lp - np.polyval(np.polyfit(lk, lp, 2), lk)
    peaks, props = find_peaks(resid, prominence=1.0)
    if peaks.size == 0:
        return []
    order = np.argsort(props["prominences"])[::-1][:n]
    return [float(s / k[use][peaks[i]] * pixel_size) for i in order]


def image_stats(normalised: np.ndarray, pixel_size: float = 1.0) -> dict:
    """Statistics of a normalised model-grid image, as recorded in ``meta.provenance['input_stats']`` at training.

    Per-image standardisation removes mean and spread, so what is left to compare is shape: skewness, kurtosis,
    the clipped (saturated) fraction and the spectral peaks.
    """
    x = np.asarray(normalised, dtype=np.float64).ravel()
    step = max(1, x.size // 1_000_000)
    x = x[::step]
    m, sd = x.mean(), x.std() or 1.0
    z = (x - m) / sd
    lo, hi = x.min(), x.max()
    return {
        "skewness": float(np.mean(z**3)),
        "kurtosis": float(np.mean(z**4) - 3),
        "clipped_fraction": float(np.mean((x <= lo + 1e-6) | (x >= hi - 1e-6))),
        "spectrum_peaks": spectrum_peaks(np.asarray(normalised), pixel_size),
    }


@dataclass
class DomainCheck:
    """Is this image like what the model saw in training? ``warnings`` are one-line reasons it may not be."""

    warnings: list[str]
    pixel_size_ratio: float | None
    stats: dict
    training_stats: dict | None
    score: float | None = None  # temzoo.ood score (None: the model has no reference in its temzoo.json)
    threshold: float | None = None  # the score above which the warning fires (from training/validation images)

    def to_dict(self) -> dict:
        return asdict(self)


def domain_shift(checkpoint, micrograph, frame: int = 0) -> DomainCheck:
    """Compare one frame with the checkpoint's training conditions: the out-of-distribution score of its deepest
    features (temzoo.ood), pixel size, intensity shape, spectrum."""
    from temzoo.predict import prepare_input

    prep = prepare_input(checkpoint, micrograph, frame)
    warnings = list(prep.warnings)
    model_nm = checkpoint.meta.pixel_size_nm
    ratio = (prep.pixel_size_nm / model_nm) if (prep.pixel_size_nm and model_nm) else None
    unit_size = prep.model_pixel_size_nm or 1.0
    stats = image_stats(prep.image, unit_size)
    train = (checkpoint.meta.provenance or {}).get("input_stats")
    if train:
        if abs(stats["skewness"] - float(train.get("skewness", 0))) > 1.0:
            warnings.append(f"intensity skewness {stats['skewness']:.2f} vs {float(train['skewness']):.2f} in "
                            "training: different contrast (bright-field vs dark-field/HAADF?)")
        if abs(stats["kurtosis"] - float(train.get("kurtosis", 0))) > 3.0:
            warnings.append(f"intensity kurtosis {stats['kurtosis']:.2f} vs {float(train['kurtosis']):.2f} in "
                            "training: different intensity distribution")
        if stats["clipped_fraction"] > max(0.05, 3 * float(train.get("clipped_fraction", 0))):
            warnings.append(f"{100 * stats['clipped_fraction']:.1f} % of pixels are at the intensity limits "
                            "(saturated or clipped); the model saw few such pixels")
        tp = train.get("spectrum_peaks") or []
        if tp and stats["spectrum_peaks"]:
            best = min(abs(np.log(stats["spectrum_peaks"][0] / t)) for t in tp)
            if best > np.log(1.25):
                warnings.append(f"strongest periodicity {stats['spectrum_peaks'][0]:.3g} "
                                f"{'nm' if prep.model_pixel_size_nm else 'px'} matches none seen in training "
                                f"({', '.join(f'{t:.3g}' for t in tp)})")
    if stats["spectrum_peaks"] and stats["spectrum_peaks"][0] / unit_size < 3.0:
        warnings.append(f"a periodicity of {stats['spectrum_peaks'][0] / unit_size:.1f} px on the model's grid is "
                        "close to the sampling limit: lattice fringes may be lost by the resampling")
    from temzoo.ood import score_prepared

    ood = score_prepared(checkpoint, prep.image)
    if ood is not None and ood.shifted:
        warnings.insert(0, ood.line())
    return DomainCheck(warnings, ratio, stats, train, ood.score if ood else None, ood.threshold if ood else None)


# ------------------------------------------------------------------------------------------------ folder evaluation
def evaluate_folders(checkpoint, images_dir, masks_dir, pixel_size_nm: float | None = None, options=None,
                     threshold: float = 0.5, progress=None) -> dict:
    """Pooled metrics of ``checkpoint`` over an image/mask folder pair (pixel counts and objects summed over images).

    ``pixel_size_nm`` sets the pixel size of every image (for files that do not carry one; it overrides the file).
    """
    from temzoo.confidence import reliability
    from temzoo.io import read_micrograph
    from temzoo.labelled import find_pairs, read_label
    from temzoo.predict import PredictOptions, predict

    if pixel_size_nm is not None and not pixel_size_nm > 0:
        raise DataError(f"--pixel-size-nm must be > 0, got {pixel_size_nm}")
    opts = options or PredictOptions(threshold=threshold)
    kind = class_kind(checkpoint.meta)
    pairs = find_pairs(images_dir, masks_dir, require_all=True).pairs
    pix, obj = PixelCounts(), ObjectCounts()
    grains = {"n_pred_grains": 0, "n_true_grains": 0, "abs_diff": 0, "pred_sizes": [], "true_sizes": []}
    n_bins = 15
    bin_n = np.zeros(n_bins)
    bin_conf = np.zeros(n_bins)
    bin_acc = np.zeros(n_bins)
    per_image = []
    calibrated_all = True
    for i, (ip, mp) in enumerate(pairs):
        mg = read_micrograph(ip)
        if pixel_size_nm is not None:
            mg = mg.with_data(mg.data, pixel_size_nm=pixel_size_nm)
        calibrated_all = calibrated_all and mg.calibrated
        truth = read_label(mp, mg.shape, ip.name)
        pred = predict(checkpoint, mg, opts)
        if pred.probability.ndim != 2:
            raise DataError("evaluate supports binary (one-class) models; this model has several classes")
        pc = pixel_counts(pred.probability, truth, threshold)
        rel = reliability(pred.probability, truth, n_bins=n_bins, threshold=threshold)
        pix = pix + pc
        if kind == "network":
            gc = grain_counts(pred.mask, truth, mg.pixel_size_nm)
            for k in ("n_pred_grains", "n_true_grains", "pred_sizes", "true_sizes"):
                grains[k] += gc[k]
            grains["abs_diff"] += abs(gc["n_pred_grains"] - gc["n_true_grains"])
            own = {"n_pred_grains": gc["n_pred_grains"], "n_true_grains": gc["n_true_grains"]}
        else:
            oc = object_counts(pred.mask, truth, mg.pixel_size_nm)
            obj = obj + oc
            own = {"object_f1": oc.scores()["object_f1"], "n_pred_objects": oc.n_pred, "n_true_objects": oc.n_true}
        valid = rel.count > 0
        bin_n += rel.count
        bin_conf[valid] += rel.confidence[valid] * rel.count[valid]
        bin_acc[valid] += rel.accuracy[valid] * rel.count[valid]
        per_image.append({"image": ip.name, **pc.scores(), **own, "ece": rel.ece})
        if progress is not None:
            progress((i + 1) / len(pairs), ip.name)
    out = pix.scores()
    with np.errstate(invalid="ignore", divide="ignore"):
        ece = float(np.nansum(bin_n / max(bin_n.sum(), 1) * np.abs(bin_acc / bin_n - bin_conf / bin_n)))
    if kind == "network":
        out.update({"n_pred_grains": grains["n_pred_grains"], "n_true_grains": grains["n_true_grains"],
                    "grain_count_error": grains["abs_diff"] / max(grains["n_true_grains"], 1),
                    "size_distance": size_distance(grains["pred_sizes"], grains["true_sizes"])})
    else:
        os_ = obj.scores()
        out.update({"object_f1": os_["object_f1"], "count_error": os_["count_error"],
                    "size_distance": os_["size_distance"]})
    out.update({"kind": kind, "ece": ece, "n_images": len(pairs), "size_unit": "nm" if calibrated_all else "px",
                "threshold": threshold, "model": checkpoint.model_id, "per_image": per_image})
    return out
