"""The Teach lessons' library side, end to end on CI-sized data: real simulation, real training steps, real models.

Besides running, each test checks that "the plots say what the text claims": the sentences a lesson shows are
compared with the lesson's own numbers, and the physics/architecture claims the static text makes are asserted.
"""

from __future__ import annotations

import numpy as np
import pytest

from temzoo.errors import DataError, TemzooError
from tests.lesson_fixtures import TEST_DATA, build


@pytest.fixture(scope="module")
def lesson_env(tmp_path_factory):
    ws, model = build(tmp_path_factory.mktemp("lesson_home"))
    from temzoo.lessons.workspace import load

    return ws, model, load(model), ws.lesson_set(TEST_DATA)


@pytest.fixture(scope="module")
def lesson_field(lesson_env):
    from temzoo.lessons.dose_defocus import load_field

    return load_field(lesson_env[0])


def test_registry_and_modules():
    from temzoo.lessons import LESSONS, lesson_module

    assert [x.id for x in LESSONS] == ["dose-defocus", "fringes", "labels", "layers", "trust"]
    for info in LESSONS:
        mod = lesson_module(info.id)
        assert mod.TITLE == info.title and mod.INTRO and mod.QUESTION.endswith("?")
        assert callable(mod.findings) and callable(mod.answer)
    with pytest.raises(DataError, match="unknown lesson"):
        lesson_module("nope")


def test_lesson_set_split_by_field(lesson_env):
    ws, _, _, ls = lesson_env
    assert ls.train_names == ["00000", "00002"]  # variant 0 of the training fields
    assert ls.val_names == ["00004", "00005"]  # every variant of the validation field
    assert ls.train_field_names == ["00000", "00001", "00002", "00003"]
    img, mask = ls.load(ls.val_names[0])
    assert img.shape == mask.shape == (96, 96) and mask.any() and not mask.all()
    assert ws.has_set(TEST_DATA)


def test_standin_is_labelled_and_zoo_preferred(lesson_env):
    ws, model, ck, _ = lesson_env
    assert model.kind == "stand-in" and "stand-in" in model.label and "not installed" in model.label
    assert ck.meta.pixel_size_nm == pytest.approx(0.05)
    found = ws.find_model()
    assert found is not None and found.kind in ("zoo", "stand-in")  # the zoo model wins once it is installed
    with pytest.raises(DataError):
        ws.build_standin(seconds=0)


def test_lesson1_dose_and_defocus(lesson_env, lesson_field):
    from temzoo.lessons import dose_defocus as L

    _, model, ck, _ = lesson_env
    fld = lesson_field
    assert fld.truth.shape == (L.SIZE_PX, L.SIZE_PX) and 0.05 < fld.truth.mean() < 0.6
    v = L.view(fld, 1000.0, -10.0, ck, model.label)
    assert v.probability.shape == v.image.shape == fld.truth.shape and 0 <= v.f1 <= 1
    assert 0.5 <= v.mean_confidence <= 1
    doses = (10.0, 100.0, 1000.0, 10000.0)
    ds = L.sweep(fld, "dose", doses, -10.0, ck)
    fs = L.sweep(fld, "defocus", (-20.0, -10.0, 0.0, 10.0, 20.0), 1000.0)
    # "SNR grows as sqrt(dose)": strictly increasing, and ~x10 over a x1000 dose range (shot noise)
    assert all(b > a for a, b in zip(ds.snr, ds.snr[1:]))
    assert 15 < ds.snr[-1] / ds.snr[0] < 60
    # "the contrast is weakest near zero defocus" (phase contrast through sin(chi))
    assert abs(fs.x[int(np.argmin(fs.contrast))]) <= 10
    assert min(fs.contrast) < 0.8 * max(fs.contrast)
    text = " ".join(L.findings(ds, fs))
    assert "rises at every step" in text
    assert f"at {fs.x[int(np.argmin(fs.contrast))]:g} nm." in text
    assert "In this run" in L.answer(ds, fs)
    with pytest.raises(TemzooError):
        L.view(fld, 0.0, 0.0)


def test_lesson2_fringes(lesson_env, lesson_field):
    from temzoo.lessons import fringes as L

    _, model, ck, _ = lesson_env
    res = L.run(ck, lesson_field, dose=2000.0, defocus_nm=-10.0, ig_steps=4, model_label=model.label)
    assert [b.kind for b in res.bands] == ["contrast", "middle", "lattice"]
    # the lattice the lesson talks about is really in the simulated image: Au {200} at 0.204 nm
    assert res.spacing_source.startswith("measured")
    assert abs(res.lattice_spacing_nm - L.AU_200_NM) < 0.02
    lat, con = res.band("lattice"), res.band("contrast")
    assert lat.period_min_nm < res.lattice_spacing_nm < lat.period_max_nm
    assert all(b.mean_abs_change >= 0 for b in res.bands)
    assert res.attribution.shape == res.image.shape and np.abs(res.attribution).sum() > 0
    # receptive field in nm against the lattice period (Sytwu et al.): the numbers behind the drawing
    rf = res.receptive_field
    assert res.rf_periods == pytest.approx(rf["extent_nm"] / res.lattice_spacing_nm)
    assert res.rf_periods >= 3  # the default architecture spans several periods, as the text says
    text = " ".join(L.findings(res))
    if lat.mean_abs_change > con.mean_abs_change:
        assert "lattice-fringe band matters more" in text
    else:
        assert "coarse-contrast band matters more" in text
    assert f"Removing the {L.most_important(res).kind} band" in text
    assert "(several)" in text


def test_lesson3_label_count(lesson_env, tmp_path):
    from temzoo.lessons import label_count as L

    ws, model, _, ls = lesson_env
    res = L.run(model.ref, ls, tmp_path, counts=(1, 2), epochs=1, base_label=model.label)
    assert len(res.curves) == 4 and res.label_counts == [1, 2]
    for c in res.curves:
        assert c.val_f1 and c.steps == [4] and 0 <= c.best_f1 <= 1
        assert c.train_images == ls.train_names[:c.n_labels]
    s, p = res.pair(1)
    assert s.strategy == "scratch" and p.strategy == "full" and p.base == model.ref
    text = " ".join(L.findings(res))
    for n in (1, 2):
        s, p = res.pair(n)
        assert f"best F1 {p.best_f1:.2f} pretrained vs {s.best_f1:.2f} from scratch" in text
        lead = "pretrained" if p.best_f1 > s.best_f1 else "scratch" if p.best_f1 < s.best_f1 else "neither"
        assert f"({lead} ahead" in text
    with pytest.raises(DataError, match="labelled images"):
        L.run(model.ref, ls, tmp_path, counts=(5,), epochs=1)


def test_lesson4_layers(lesson_env, tmp_path):
    from temzoo.lessons import layers as L

    _, model, ck, ls = lesson_env
    counts = L.parameter_counts(ck)
    assert counts["freeze-encoder"]["trainable"] < counts["full"]["trainable"]
    assert counts["freeze-decoder"]["trainable"] < counts["full"]["trainable"]
    assert counts["full"]["trainable"] == counts["l2sp"]["trainable"] == counts["full"]["total"]
    assert counts["freeze-encoder"]["encoder_trainable"] == 0
    res = L.run(ck, model.ref, ls, tmp_path, strategies=("freeze-encoder", "full"), n_labels=1, epochs=1)
    fe, full = res.curve("freeze-encoder"), res.curve("full")
    # the runs really froze what the counts say (trainable parameters recorded by the training loop)
    assert fe.trainable == res.counts["freeze-encoder"]["trainable"] < full.trainable == res.counts["full"]["trainable"]
    text = " ".join(L.findings(res))
    saved = 1 - counts["freeze-encoder"]["trainable"] / counts["full"]["trainable"]
    assert f"trains {100 * saved:.0f} % fewer parameters" in text
    worst = min(res.curves, key=lambda c: c.best_f1)
    assert f"{worst.strategy} worst here" in text


def test_lesson5_trust(lesson_env, tmp_path):
    from temzoo.lessons import trust as L

    _, model, ck, ls = lesson_env
    r = L.run(ck, ls, model.label)
    assert r.n_cal_images == 4 and r.n_eval_images == 2 and r.temperature > 0
    # temperature scaling lowers the ECE on the images it was fitted on
    assert r.ece_cal_after < r.ece_cal_before
    # the deliberate label error: a higher loss where the label is wrong than with the right label
    assert r.error_region.any() and not (r.wrong_label & r.error_region).any()
    assert r.loss_wrong_label > r.loss_right_label
    assert r.loss_wrong_label > r.loss_elsewhere
    text = " ".join(L.findings(r))
    assert ("lowers" if r.ece_after < r.ece_before else "does not lower") + " it, from" in text
    assert "(higher with the error" in text
    x = L.react(model.ref, ls, r, tmp_path, epochs=1)
    # training on the wrong label pulls the erased particle towards background, compared with the right label
    assert x.probability_wrong < x.probability_right
    assert "with the right label and" in " ".join(L.findings(r, x))


def test_pixel_loss_and_erase():
    from temzoo.lessons.trust import erase_particle, pixel_loss

    mask = np.zeros((20, 20), bool)
    mask[2:8, 2:8] = True
    mask[12:18, 12:18] = True
    prob = np.where(mask, 0.9, 0.1).astype(np.float32)
    prob[12:18, 12:18] = 0.6
    wrong, region, score = erase_particle(mask, prob)
    assert region[4, 4] and not region[14, 14] and score == pytest.approx(0.9)
    loss = pixel_loss(prob, wrong)
    assert loss[4, 4] == pytest.approx(-np.log(0.1), rel=1e-5) and loss[14, 14] == pytest.approx(-np.log(0.6), rel=1e-5)
    with pytest.raises(DataError):
        erase_particle(np.zeros((5, 5), bool))
