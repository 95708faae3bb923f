"""Lesson 5 -- Can you trust the confidence? Calibration, uncertain pixels vs error pixels, and a wrong label.

The lesson model segments the lesson set's images (it never trained on them). A temperature is fitted on the
"training" fields (temzoo.confidence.fit_temperature) and the reliability diagram and ECE are measured on the other
fields before and after. Then one particle is erased from one label on purpose, and the lesson compares the
per-pixel loss and the model's confidence inside that wrong region with the rest (Ochoa et al.: label errors show as
confident disagreement between model and label).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TITLE = "5. Can you trust the confidence?"
INTRO = """\
A segmentation model gives every pixel a probability; the **confidence** is the probability of the class it chose.
It is *calibrated* if, among all pixels with confidence 0.9, 90 % are right. The **reliability diagram** plots
accuracy against confidence (the diagonal is perfect); the **expected calibration error (ECE)** is the average gap.
**Temperature scaling** (Guo et al.) divides the logits by one number fitted on labelled images: it cannot change
the mask, only how sure the model says it is. Below you also see whether the uncertain pixels are where the errors
are, and what happens when a label itself is wrong (Ochoa et al. found label errors in their own ground truth).
"""
QUESTION = ("After temperature scaling, is the model better, or only more honest? And in the image with the wrong "
            "label: does the model's confidence drop where the label is wrong, or does something else give the "
            "error away?")
UNCERTAIN_BELOW = 0.8


@dataclass
class TrustResult:
    temperature: float
    ece_before: float  # on the evaluation fields (not used for fitting)
    ece_after: float
    ece_cal_before: float  # on the calibration images the temperature was fitted on
    ece_cal_after: float
    reliability_before: dict  # Reliability.to_dict() on the evaluation fields
    reliability_after: dict
    n_cal_images: int
    n_eval_images: int
    error_rate_uncertain: float  # share of wrong pixels among confidence < UNCERTAIN_BELOW
    error_rate_confident: float  # ... among confidence >= UNCERTAIN_BELOW
    uncertain_fraction: float
    errors_flagged: float  # share of wrong pixels that are uncertain
    # one evaluation image for the maps
    image_name: str
    image: np.ndarray
    truth: np.ndarray
    probability: np.ndarray
    confidence: np.ndarray
    # the deliberate label error
    wrong_label: np.ndarray
    error_region: np.ndarray
    loss_map: np.ndarray  # per-pixel loss against the wrong label
    loss_wrong_label: float  # mean loss in the erased region, against the wrong label
    loss_right_label: float  # ... against the right label
    loss_elsewhere: float  # mean loss outside the region
    confidence_error_region: float  # the same whichever label: confidence never sees the label
    confidence_elsewhere: float
    flagged_in_region: float  # share of the wrong region where the model confidently disagrees with the label
    pixel_size_nm: float
    seconds: float
    model_label: str | None = None


@dataclass
class Reaction:
    """Confidence on the erased particle after a short fine-tuning on the right vs on the wrong label."""

    seconds: float
    confidence_before: float
    confidence_right: float
    confidence_wrong: float
    probability_before: float  # mean foreground probability on the erased particle
    probability_right: float
    probability_wrong: float
    confidence_map_wrong: np.ndarray
    confidence_map_right: np.ndarray


def _predict(checkpoint, img: np.ndarray, px: float) -> np.ndarray:
    from temzoo.predict import PredictOptions, predict
    from temzoo.types import Micrograph

    return predict(checkpoint, Micrograph(img, px, source="lesson 5"), PredictOptions(device="cpu")).probability


def pixel_loss(probability: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Binary cross-entropy per pixel (nats) of a probability map against a 0/1 label."""
    p = np.clip(probability.astype(np.float64), 1e-6, 1 - 1e-6)
    y = label > 0
    return np.where(y, -np.log(p), -np.log1p(-p)).astype(np.float32)


def erase_particle(mask: np.ndarray, probability: np.ndarray | None = None,
                   min_area_px: int = 20) -> tuple[np.ndarray, np.ndarray, float]:
    """``(wrong_label, region, score)``: the label with one particle erased, that particle's pixels, and its score.

    The particle erased is the one the model finds best (highest mean foreground probability), so that the
    label error contradicts the model; without a probability map, the largest.
    """
    from skimage.measure import label as cc

    lab = cc(mask > 0)
    best, best_score = 0, -1.0
    for k in range(1, int(lab.max()) + 1):
        region = lab == k
        if region.sum() < min_area_px and lab.max() > 1:
            continue
        score = float(probability[region].mean()) if probability is not None else float(region.sum())
        if score > best_score:
            best, best_score = k, score
    if best == 0:
        from temzoo.errors import DataError

        raise DataError("the image has no particle to erase; pick another image")
    region = lab == best
    return (mask > 0) & ~region, region, best_score


def run(checkpoint, lesson_set, model_label: str | None = None, progress=None) -> TrustResult:
    """Fit a temperature on the training fields, measure on the validation fields, corrupt one label."""
    import time

    from temzoo.confidence import apply_temperature, fit_temperature, max_probability, reliability_from_pixels

    t0 = time.perf_counter()
    say = progress or (lambda f, t="": None)
    px = lesson_set.pixel_size_nm
    cal_names, eval_names = list(lesson_set.train_field_names), list(lesson_set.val_names)
    probs, masks, imgs = {}, {}, {}
    all_names = cal_names + eval_names
    for i, n in enumerate(all_names):
        imgs[n], masks[n] = lesson_set.load(n)
        probs[n] = _predict(checkpoint, imgs[n], px)
        say(0.9 * (i + 1) / len(all_names), f"predicted {i + 1}/{len(all_names)} images")
    t = fit_temperature([probs[n] for n in cal_names], [masks[n] for n in cal_names])

    def rel(names, temp):
        conf, correct = [], []
        for n in names:
            p = apply_temperature(probs[n], temp)
            conf.append(max_probability(p).ravel())
            correct.append(((p >= 0.5) == masks[n]).ravel())
        c, ok = np.concatenate(conf), np.concatenate(correct).astype(np.float64)
        return reliability_from_pixels(c, ok, n_bins=10, lo=0.5), c, ok

    rel0, conf0, ok0 = rel(eval_names, 1.0)
    rel1, _, _ = rel(eval_names, t)
    cal0, cal1 = rel(cal_names, 1.0)[0], rel(cal_names, t)[0]
    unc = conf0 < UNCERTAIN_BELOW
    wrong = ok0 < 0.5
    rate_unc = float(wrong[unc].mean()) if unc.any() else 0.0
    rate_conf = float(wrong[~unc].mean()) if (~unc).any() else 0.0
    flagged = float(unc[wrong].mean()) if wrong.any() else 0.0

    # the deliberate label error: erase the particle the model finds best, in the evaluation images
    erased = {n: erase_particle(masks[n], probs[n]) for n in eval_names if masks[n].any()}
    if not erased:
        from temzoo.errors import DataError

        raise DataError("the evaluation images hold no particle; simulate the lesson set again")
    show = max(erased, key=lambda n: erased[n][2])
    p = probs[show]
    conf = max_probability(p)
    wrong_label, region, _ = erased[show]
    loss = pixel_loss(p, wrong_label)
    right_loss = pixel_loss(p, masks[show])
    disagree = ((p >= 0.5) != wrong_label) & (conf >= UNCERTAIN_BELOW)
    say(1.0, "done")
    return TrustResult(
        temperature=t, ece_before=rel0.ece, ece_after=rel1.ece, ece_cal_before=cal0.ece, ece_cal_after=cal1.ece,
        reliability_before=rel0.to_dict(), reliability_after=rel1.to_dict(), n_cal_images=len(cal_names),
        n_eval_images=len(eval_names), error_rate_uncertain=rate_unc, error_rate_confident=rate_conf,
        uncertain_fraction=float(unc.mean()), errors_flagged=flagged, image_name=show, image=imgs[show],
        truth=masks[show], probability=p, confidence=conf, wrong_label=wrong_label, error_region=region,
        loss_map=loss, loss_wrong_label=float(loss[region].mean()), loss_right_label=float(right_loss[region].mean()),
        loss_elsewhere=float(loss[~region].mean()), confidence_error_region=float(conf[region].mean()),
        confidence_elsewhere=float(conf[~region].mean()), flagged_in_region=float(disagree[region].mean()),
        pixel_size_nm=px, seconds=time.perf_counter() - t0, model_label=model_label)


def react(base_ref: str, lesson_set, result: TrustResult, workdir, seconds: float = 15.0,
          progress=None, epochs: int | None = None) -> Reaction:
    """Fine-tune the base briefly on the shown image with the right label and, separately, with the wrong one;
    compare the confidence on the erased particle (two runs of ``seconds``)."""
    import shutil
    from pathlib import Path

    from PIL import Image
    from safetensors.torch import load_file

    from temzoo.confidence import max_probability
    from temzoo.train import TrainConfig, train
    from temzoo.zoo import load_model

    work = Path(workdir) / "trust-react"
    shutil.rmtree(work, ignore_errors=True)
    val = next(n for n in lesson_set.val_names if n != result.image_name)
    other = lesson_set.train_names[0]  # a correctly labelled image beside the one with the (possibly) wrong label
    region = result.error_region
    out = {}
    for j, (kind, label) in enumerate((("right", result.truth), ("wrong", result.wrong_label))):
        data = lesson_set.subset([result.image_name, other, val], work / kind / "data")
        Image.fromarray((label > 0).astype(np.uint8) * 255).save(data / "masks" / f"{result.image_name}.png")
        cfg = TrainConfig(images=str(data / "images"), masks=str(data / "masks"), base=base_ref, strategy="full",
                          minutes=None if epochs else seconds / 60, epochs=epochs,
                          tile_size=lesson_set.config.size_px, batch_size=4, val_names=[val],
                          patience=0, seed=0, steps_per_epoch=4, warmup_fraction=0.0, device="cpu",
                          noise_probability=0.0)
        on_step = None
        if progress is not None:
            def on_step(info: dict, j: int = j, kind: str = kind) -> None:
                frac = info["progress"] if epochs else info["seconds"] / seconds
                progress(min(1.0, (j + min(1.0, frac)) / 2),
                         f"fine-tuning on the {kind} label: loss {info['loss']:.3f}")
        # the *last* weights, not the best on validation: the point is what the label taught
        train(cfg, work / kind / "train", out=work / kind / "result", on_step=on_step, log=lambda _m: None)
        ck = load_model(str(work / kind / "result"))
        ck.model.load_state_dict(load_file(str(work / kind / "train" / "last" / "model.safetensors")))
        p = _predict(ck, result.image, result.pixel_size_nm)
        out[kind] = (p, max_probability(p))
    shutil.rmtree(work, ignore_errors=True)
    return Reaction(
        seconds=0.0 if epochs else seconds, confidence_before=result.confidence_error_region,
        confidence_right=float(out["right"][1][region].mean()), confidence_wrong=float(out["wrong"][1][region].mean()),
        probability_before=float(result.probability[region].mean()),
        probability_right=float(out["right"][0][region].mean()),
        probability_wrong=float(out["wrong"][0][region].mean()),
        confidence_map_wrong=out["wrong"][1], confidence_map_right=out["right"][1])


def findings(r: TrustResult, reaction: Reaction | None = None) -> list[str]:
    out = []
    direction = "overconfident" if r.temperature > 1 else "underconfident"
    cal_word = "lowers" if r.ece_cal_after < r.ece_cal_before else "does not lower"
    out.append(f"The fitted temperature is {r.temperature:.2f}: the model was {direction} on the {r.n_cal_images} "
               f"calibration images. There temperature scaling {cal_word} "
               f"the ECE from {r.ece_cal_before:.3f} to {r.ece_cal_after:.3f}; on the {r.n_eval_images} images of "
               f"other fields it {'lowers' if r.ece_after < r.ece_before else 'does not lower'} it, from "
               f"{r.ece_before:.3f} to {r.ece_after:.3f}.")
    ratio = r.error_rate_uncertain / max(r.error_rate_confident, 1e-9)
    out.append(f"Pixels with confidence below {UNCERTAIN_BELOW:g} ({100 * r.uncertain_fraction:.0f} % of all) are "
               f"wrong {100 * r.error_rate_uncertain:.0f} % of the time, the others {100 * r.error_rate_confident:.1f} "
               f"% ({ratio:.1f}x); {100 * r.errors_flagged:.0f} % of the wrong pixels are flagged as uncertain.")
    out.append(f"On the erased particle the loss is {r.loss_wrong_label:.2f} nats against the wrong label and "
               f"{r.loss_right_label:.2f} against the right one "
               f"({'higher' if r.loss_wrong_label > r.loss_right_label else 'not higher'} with the error; "
               f"{r.loss_elsewhere:.2f} elsewhere); the model's confidence there is {r.confidence_error_region:.2f} "
               f"either way, and {100 * r.flagged_in_region:.0f} % of the region is confident disagreement.")
    if reaction is not None:
        x = reaction
        budget = f"{x.seconds:g} s" if x.seconds else "a few steps"
        out.append(f"After {budget} of fine-tuning the foreground probability on that particle is "
                   f"{x.probability_right:.2f} with the right label and {x.probability_wrong:.2f} with the wrong one "
                   f"(was {x.probability_before:.2f}); the confidence there is {x.confidence_right:.2f} vs "
                   f"{x.confidence_wrong:.2f}.")
    return out


def answer(r: TrustResult, reaction: Reaction | None = None) -> str:
    return (
        "Temperature scaling does not change a single pixel of the mask (dividing the logits by a positive number "
        "keeps their sign): the model is exactly as good as before, only its confidence is rescaled -- more honest "
        "on images like the ones it was fitted on, not necessarily on others. Uncertain pixels are worth a look, "
        "but not every error is uncertain. The confidence of a trained model is a property of the model and the "
        "image: it never sees the label, so a wrong label cannot change it -- what gives a label error away is a "
        "high loss where the model is confident (confident disagreement). Only when you *train* on the wrong "
        "label does the model start to doubt (or to learn the error): compare the two fine-tuning runs.\n\n"
        "**In this run:** " + " ".join(findings(r, reaction)))
