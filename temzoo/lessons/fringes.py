"""Lesson 2 -- Lattice fringes or contrast? Fourier-band importance, attributions and the receptive field in nm.

The lesson model segments the lesson-1 field imaged at a high dose. Then (temzoo.explain) one band of spatial
frequencies is removed at a time and the change of the prediction measured; integrated gradients show which pixels
the foreground logit depends on; and the measured receptive field is compared with the lattice spacing (Sytwu et
al.: a field of view of only one or two lattice periods cannot tell a crystal from noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

TITLE = "2. Lattice fringes or contrast?"
INTRO = """\
A nanoparticle in HRTEM differs from the carbon around it in two ways: it is **darker or brighter on average**
(mass-thickness and phase contrast, long periods) and it shows **lattice fringes** (periods of 0.1-0.4 nm).
Which one does the network use? Two ways to ask it:
**Fourier-band importance** removes one band of spatial frequencies from the image and measures how much the
predicted probability changes; **integrated gradients** attribute the foreground score to pixels.
Finally the **receptive field** -- how far away a pixel can influence a prediction -- is drawn in nm next to the
lattice period: Sytwu et al. found that it must span several lattice periods for the network to use the fringes.
"""
QUESTION = ("Which band of spatial frequencies matters most for this model, and how many lattice periods does its "
            "receptive field span? Would a network whose receptive field covered one lattice period work?")

# (longest period, shortest period) in nm, and what each band holds
BANDS: tuple[tuple[float, float, str], ...] = (
    (math.inf, 1.0, "contrast"),  # particle outline, mass-thickness and defocus contrast
    (1.0, 0.3, "middle"),  # carbon speckle, Fresnel fringes at edges
    (0.3, 0.1, "lattice"),  # {111}/{200} fringes of Au (0.24/0.20 nm), CdSe {10-10} 0.37 nm sits in "middle"
)
AU_200_NM = 4.078 / 2 / 10  # the {200} spacing of gold seen down [001] (0.204 nm)


@dataclass
class BandRow:
    kind: str
    name: str
    period_max_nm: float
    period_min_nm: float
    power_fraction: float  # share of the image's spectral power
    mean_abs_change: float  # mean |p_without - p| over the image
    mask_change: float  # fraction of pixels whose class flips


@dataclass
class FringesResult:
    image: np.ndarray
    pixel_size_nm: float
    probability: np.ndarray
    truth: np.ndarray
    bands: list[BandRow]
    attribution: np.ndarray  # integrated gradients, signed, image grid
    attribution_inside: float  # share of |attribution| on the true particles
    particle_fraction: float  # share of the image the particles cover (the no-preference reference)
    receptive_field: dict
    lattice_spacing_nm: float
    spacing_source: str
    rf_periods: float | None  # receptive-field extent / lattice spacing
    rf_effective_periods: float | None  # 2 * 95 % radius / lattice spacing
    dose: float
    defocus_nm: float
    seconds: float
    model_label: str | None = None
    spectrum_peaks_nm: list[float] = field(default_factory=list)

    def band(self, kind: str) -> BandRow:
        return next(b for b in self.bands if b.kind == kind)


def lattice_spacing(peaks_nm: list[float]) -> tuple[float, str]:
    """The lattice period to compare with: the strongest measured spectrum peak in 0.1-0.3 nm, else Au {200}."""
    for p in peaks_nm:
        if 0.1 <= p <= 0.3:
            return float(p), "measured (strongest power-spectrum peak between 0.1 and 0.3 nm)"
    return AU_200_NM, "gold {200} spacing (no clear spectrum peak measured)"


def run(checkpoint, fld, dose: float = 1000.0, defocus_nm: float = -10.0, ig_steps: int = 16,
        model_label: str | None = None, progress=None) -> FringesResult:
    """Band ablation, integrated gradients and receptive field of ``checkpoint`` on the lesson field."""
    import time

    from temzoo.explain import ExplainOptions, explain, fourier_band_importance, receptive_field
    from temzoo.lessons.dose_defocus import render
    from temzoo.predict import PredictOptions, predict
    from temzoo.types import Micrograph

    t0 = time.perf_counter()
    counts, _ = render(fld, dose, defocus_nm)
    mg = Micrograph(counts, fld.pixel_size_nm, source="lesson 2")
    say = progress or (lambda f, t="": None)
    say(0.05, "predicting")
    pred = predict(checkpoint, mg, PredictOptions(device="cpu"))
    say(0.15, "removing frequency bands")
    bi = fourier_band_importance(checkpoint, mg, bands=[(a, b) for a, b, _ in BANDS], device="cpu")
    rows = []
    for (pmax, pmin, kind), b in zip(BANDS, bi.bands):
        rows.append(BandRow(kind, b.name, pmax, pmin, b.power_fraction, b.mean_abs_change, b.mask_change))
    say(0.45, "integrated gradients")
    ex = explain(checkpoint, mg, "integrated-gradients", prediction=pred,
                 options=ExplainOptions(ig_steps=ig_steps, device="cpu"))
    a = np.abs(ex.importance)
    truth = fld.truth
    inside = float(a[truth].sum() / max(a.sum(), 1e-12))
    say(0.85, "receptive field")
    rf = receptive_field(checkpoint)
    spacing, source = lattice_spacing(list(bi.spectrum_peaks) if bi.unit == "nm" else [])
    periods = rf["extent_nm"] / spacing if rf.get("extent_nm") else None
    eff = 2 * rf["radius95_nm"] / spacing if rf.get("radius95_nm") else None
    say(1.0, "done")
    return FringesResult(counts, fld.pixel_size_nm, pred.probability, truth, rows, ex.importance, inside,
                         float(truth.mean()), rf, spacing, source, periods, eff, float(dose), float(defocus_nm),
                         time.perf_counter() - t0, model_label, list(bi.spectrum_peaks))


def most_important(res: FringesResult) -> BandRow:
    return max(res.bands, key=lambda b: b.mean_abs_change)


def findings(res: FringesResult) -> list[str]:
    """Sentences read off this run's numbers (the page shows them; the tests check them against the numbers)."""
    lat, con = res.band("lattice"), res.band("contrast")
    top = most_important(res)
    out = [f"Removing the {top.kind} band ({top.name}) changes the prediction most: mean |change of probability| "
           f"{top.mean_abs_change:.3f}, {100 * top.mask_change:.1f} % of the pixels switch class."]
    if lat.mean_abs_change > con.mean_abs_change:
        out.append(f"The lattice-fringe band matters more than the coarse-contrast band here "
                   f"({lat.mean_abs_change:.3f} vs {con.mean_abs_change:.3f}); that band holds "
                   f"{100 * lat.power_fraction:.0f} % of the image's spectral power, shot noise included.")
    else:
        out.append(f"The coarse-contrast band matters more than the lattice-fringe band here "
                   f"({con.mean_abs_change:.3f} vs {lat.mean_abs_change:.3f}).")
    ratio = res.attribution_inside / max(res.particle_fraction, 1e-9)
    out.append(f"{100 * res.attribution_inside:.0f} % of the attribution lies on the particles, which cover "
               f"{100 * res.particle_fraction:.0f} % of the image ({ratio:.1f}x their share).")
    rf = res.receptive_field
    if res.rf_periods is not None:
        verdict = "several" if res.rf_periods >= 3 else "fewer than three"
        out.append(f"The receptive field is {rf['extent_nm']:.2f} nm wide = {res.rf_periods:.0f} lattice periods of "
                   f"{res.lattice_spacing_nm:.3f} nm ({verdict}); 95 % of its weight lies within "
                   f"{rf['radius95_nm']:.2f} nm of the pixel, a diameter of {res.rf_effective_periods:.0f} periods.")
    return out


def answer(res: FringesResult) -> str:
    return (
        "A pixel's prediction can only depend on what lies inside its receptive field. To recognise a lattice the "
        "field has to hold several periods -- one or two fringes look like noise or like carbon speckle -- which is "
        "why Sytwu et al. found that U-Nets whose receptive field spans several lattice periods segment HRTEM "
        "nanoparticles far better, and why temzoo resamples every image to the pixel size the model was trained "
        "at (at twice the pixel size the same field holds half as many nm). Whether a given model actually *uses* "
        "the fringes or just the darker blob is an empirical question: the band ablation answers it for this "
        "model and this image. Remember that removing a band also changes the image statistics, so compare bands "
        "with each other rather than reading the absolute numbers.\n\n**In this run:** " + " ".join(findings(res)))
