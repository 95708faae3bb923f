"""Lesson 3 -- How many labels do you need? From scratch vs from the pretrained base with 1, 2 and 4 labelled images.

Each run is a real, short :func:`temzoo.train.train` on the lesson's simulated set (128 px tiles, a few seconds to
tens of seconds), validated every four steps on the same held-out fields.
"""

from __future__ import annotations

from dataclasses import dataclass

TITLE = "3. How many labels do you need?"
INTRO = """\
Labelling HRTEM images by hand is slow, so the question every project asks is: *how few labels are enough?*
Kazimi et al. and Rangel DaCosta et al. found that starting from a network **pretrained** on related data (here the
zoo's base, pretrained on many simulated nanoparticles) needs far fewer labels and far less training than starting
**from scratch**. Try it: each curve below is a real training run on 1, 2 or 4 labelled images, scored on the same
held-out images. Budgets are tiny so the whole lesson fits in a few minutes on a laptop CPU.
"""
QUESTION = ("Compare the curves at the same number of labels. How much does pretraining buy you with one labelled "
            "image -- and does the gap close as you add labels?")

LABEL_COUNTS = (1, 2, 4)
DEFAULT_SECONDS = 15.0


@dataclass
class LabelCountResult:
    curves: list  # runs.Curve, scratch and pretrained for each label count
    base_label: str
    seconds: float

    def pair(self, n: int):
        """``(scratch, pretrained)`` curves for ``n`` labels."""
        s = next(c for c in self.curves if c.n_labels == n and c.strategy == "scratch")
        p = next(c for c in self.curves if c.n_labels == n and c.strategy != "scratch")
        return s, p

    @property
    def label_counts(self) -> list[int]:
        return sorted({c.n_labels for c in self.curves})


def specs(base_ref: str, counts=LABEL_COUNTS, seconds: float = DEFAULT_SECONDS, epochs: int | None = None) -> list:
    from temzoo.lessons.runs import RunSpec

    out = []
    for n in counts:
        plural = "s" if n > 1 else ""
        out.append(RunSpec(f"scratch, {n} label{plural}", "scratch", "scratch", n, seconds, epochs=epochs))
        out.append(RunSpec(f"pretrained, {n} label{plural}", base_ref, "full", n, seconds, epochs=epochs))
    return out


def run(base_ref: str, lesson_set, workdir, counts=LABEL_COUNTS, seconds: float = DEFAULT_SECONDS,
        base_label: str = "pretrained base", progress=None, should_stop=None,
        epochs: int | None = None) -> LabelCountResult:
    """Train scratch and pretrained runs for each label count (``2 * len(counts)`` runs of ``seconds`` each, or of
    ``epochs`` x 4 steps when given)."""
    import time

    from temzoo.lessons.runs import run_all

    t0 = time.monotonic()
    curves = run_all(specs(base_ref, counts, seconds, epochs), lesson_set, workdir, progress, should_stop)
    return LabelCountResult(curves, base_label, time.monotonic() - t0)


def findings(res: LabelCountResult) -> list[str]:
    out = []
    gaps = []
    for n in res.label_counts:
        s, p = res.pair(n)
        gap = p.best_f1 - s.best_f1
        gaps.append(gap)
        who = "pretrained" if gap > 0 else "scratch" if gap < 0 else "neither"
        out.append(f"{n} label{'s' if n > 1 else ''}: best F1 {p.best_f1:.2f} pretrained vs {s.best_f1:.2f} from "
                   f"scratch ({who} ahead by {abs(gap):.2f}).")
    if len(gaps) > 1:
        if abs(gaps[-1]) < abs(gaps[0]):
            out.append(f"The gap shrinks from {gaps[0]:+.2f} with {res.label_counts[0]} label(s) to {gaps[-1]:+.2f} "
                       f"with {res.label_counts[-1]}.")
        else:
            out.append(f"The gap does not shrink within these budgets ({gaps[0]:+.2f} with {res.label_counts[0]} "
                       f"label(s), {gaps[-1]:+.2f} with {res.label_counts[-1]}).")
    return out


def answer(res: LabelCountResult) -> str:
    return (
        "A pretrained network already knows what particles on carbon look like at this pixel size -- fringes, edges, "
        "the speckle of the carbon -- so a single label only has to *adjust* it, while a network from scratch has to "
        "learn everything from that one image and, with a short budget, rarely gets far. With more labels and more "
        "time the scratch model catches up, which is why the benefit of pretraining is largest exactly where labels "
        "are scarce (Kazimi et al.; Rangel DaCosta et al.). The budgets here are seconds, not hours: the absolute "
        "numbers are low, but the ordering is what the lesson is about -- rerun with another budget to see how "
        "stable it is.\n\n**In this run:** " + " ".join(findings(res)))
