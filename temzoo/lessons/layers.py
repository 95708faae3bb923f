"""Lesson 4 -- Which layers to train? Frozen encoder vs frozen decoder vs full fine-tuning vs L2-SP.

Trainable parameter counts come from :func:`temzoo.train.strategies.trainable_parameters` (no training needed);
the curves from short real runs on the lesson set, all from the same base and with the same labelled images.
"""

from __future__ import annotations

from dataclasses import dataclass

TITLE = "4. Which layers to train?"
INTRO = """\
Fine-tuning does not have to change every weight. The **encoder** turns the image into features (edges, fringes,
textures); the **decoder** turns features back into a mask. Rangel DaCosta et al. compared freezing either half:
freezing the encoder trains ~80 % fewer parameters and is a little worse, freezing the decoder is about as good as
training everything. **L2-SP** (Li et al.) trains everything but pulls the weights back towards the pretrained ones --
a guard against forgetting when labels are few. Below: how many parameters each strategy trains, and how each one
learns from the same labelled images in the same time.
"""
QUESTION = ("Which strategy trains the fewest parameters, and is it the worst? When would you still choose it?")

STRATEGIES = ("freeze-encoder", "freeze-decoder", "full", "l2sp")
DEFAULT_SECONDS = 20.0
DEFAULT_LABELS = 2


@dataclass
class LayersResult:
    counts: dict[str, dict]  # strategy -> trainable_parameters(...)
    curves: list  # runs.Curve per strategy
    n_labels: int
    base_label: str
    seconds: float

    def curve(self, strategy: str):
        return next(c for c in self.curves if c.strategy == strategy)


def parameter_counts(checkpoint, strategies=STRATEGIES) -> dict[str, dict]:
    """Trainable / total parameters per strategy and per part (encoder, decoder, head) of the base."""
    from temzoo.train.strategies import trainable_parameters

    return {s: trainable_parameters(checkpoint.model, s) for s in strategies}


def run(checkpoint, base_ref: str, lesson_set, workdir, strategies=STRATEGIES, n_labels: int = DEFAULT_LABELS,
        seconds: float = DEFAULT_SECONDS, base_label: str = "pretrained base", progress=None,
        should_stop=None, epochs: int | None = None) -> LayersResult:
    """Parameter counts, then one run per strategy from the same base on the same ``n_labels`` images."""
    import time

    from temzoo.lessons.runs import RunSpec, run_all

    t0 = time.monotonic()
    counts = parameter_counts(checkpoint, strategies)
    specs = [RunSpec(s, base_ref, s, n_labels, seconds, epochs=epochs) for s in strategies]
    curves = run_all(specs, lesson_set, workdir, progress, should_stop)
    return LayersResult(counts, curves, n_labels, base_label, time.monotonic() - t0)


def findings(res: LayersResult) -> list[str]:
    c = res.counts
    out = []
    fewest = min(c, key=lambda s: c[s]["trainable"])
    out.append(", ".join(f"{s}: {c[s]['trainable']:,} of {c[s]['total']:,} ({100 * c[s]['fraction']:.0f} %)"
                         for s in c) + " parameters trainable.")
    if "freeze-encoder" in c and "full" in c:
        saved = 1 - c["freeze-encoder"]["trainable"] / max(1, c["full"]["trainable"])
        out.append(f"Freezing the encoder trains {100 * saved:.0f} % fewer parameters than full fine-tuning.")
    best = max(res.curves, key=lambda cv: cv.best_f1)
    worst = min(res.curves, key=lambda cv: cv.best_f1)
    budget = f"{res.curves[0].budget_s:g} s" if res.curves[0].budget_s else "the same steps"
    out.append(f"Best validation F1 in {budget} with {res.n_labels} labelled image(s): "
               + ", ".join(f"{cv.strategy} {cv.best_f1:.2f}" for cv in res.curves)
               + f"; {best.strategy} is best and {worst.strategy} worst here.")
    fewest_curve = next((cv for cv in res.curves if cv.strategy == fewest), None)
    if fewest_curve is not None:
        is_worst = fewest_curve is worst
        out.append(f"The strategy with the fewest trainable parameters ({fewest}) is "
                   f"{'the worst' if is_worst else 'not the worst'} in this run.")
    return out


def answer(res: LayersResult) -> str:
    return (
        "Freezing the encoder trains the fewest parameters: only the decoder and head adapt, so it is the fastest "
        "per step, needs the least memory and cannot forget the pretrained features -- a good choice with very "
        "few labels or a weak machine, at the price of less flexibility when the new images look different (a new "
        "detector, another pixel size). Freezing the decoder keeps the mask-drawing part and adapts the features, "
        "which Rangel DaCosta et al. found about as good as training everything. L2-SP trains everything but "
        "stays near the start, which protects small labelled sets from over-fitting. With budgets of seconds the "
        "differences are small and can change order between runs; the parameter counts do not.\n\n"
        "**In this run:** " + " ".join(findings(res)))
