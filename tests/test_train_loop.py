"""The training loop: metrics, best/last/result folders, budgets, early stopping, cancel, resume, OOM, denoising."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from temzoo.errors import DataError, JobError, TemzooError
from temzoo.train import TrainConfig, train
from temzoo.train import loop as L
from temzoo.train.denoise import pretrain_denoise
from temzoo.train.state import find_state
from temzoo.zoo import load_model
from tests.trainsets import write_disc_set, write_three_class_set

KEYS = {"epoch", "step", "seconds", "train_loss", "val_loss", "val_f1", "val_iou", "lr", "batch_size", "device"}


@pytest.fixture(scope="module")
def disc_set(tmp_path_factory):
    return write_disc_set(tmp_path_factory.mktemp("discs"), n=4, size=64)


def _cfg(disc_set, **kw):
    images, masks = disc_set
    # Whole-image validation: these tests check what trained and what validated by image name (the default,
    # "regions", is checked in test_region_validation_trains_on_every_image).
    base = dict(images=str(images), masks=str(masks), strategy="scratch", epochs=2, steps_per_epoch=3,
                batch_size=2, tile_size=32, lr=3e-3, seed=0, validation="image")
    base.update(kw)
    return TrainConfig(**base)


def _metrics(work):
    return [json.loads(x) for x in (work / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_metrics_best_last_and_a_zoo_folder(disc_set, tmp_path):
    seen = []
    out = train(_cfg(disc_set), tmp_path / "w", out=tmp_path / "model", on_epoch=seen.append)
    assert out == tmp_path / "model"
    lines = _metrics(tmp_path / "w")
    assert [r["epoch"] for r in lines] == [1, 2] and all(KEYS <= set(r) for r in lines)
    assert [r["step"] for r in lines] == [3, 6] and lines[0]["device"] == "cpu"
    assert [r["epoch"] for r in seen] == [1, 2]
    for sub in ("best", "last"):
        assert (tmp_path / "w" / sub).is_dir()
    ck = load_model(str(out))
    assert ck.meta.task == "segmentation" and ck.meta.class_names == ["background", "foreground"]
    prov = ck.meta.provenance
    assert prov["strategy"] == "scratch" and prov["data_hash"].startswith("sha256:")
    assert set(prov["val_images"]).isdisjoint(prov["train_images"]) and len(prov["val_images"]) == 1
    assert 0 <= prov["metrics"]["f1"] <= 1 and prov["stopped"] == "epochs"
    assert (out / "metrics.jsonl").read_text() == (tmp_path / "w" / "metrics.jsonl").read_text()
    assert "temzoo" in (out / "README.md").read_text()
    # #14.2/#14.3: the domain-shift reference of its training images and the class kind travel with the model
    ood = prov["ood"]
    assert len(ood["mean"]) == len(ood["scale"]) > 0 and ood["threshold"] > 0
    assert ood["calibration"]["n_train_images"] == 3 and ood["calibration"]["n_val_images"] == 1
    assert ck.meta.class_kinds == ["objects"]  # discs are objects
    # the result holds the best epoch's weights
    best = max(lines, key=lambda r: r["val_f1"])
    assert prov["best_epoch"] == best["epoch"]
    a, b = load_file(str(out / "model.safetensors")), load_file(str(tmp_path / "w" / "best" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_learns_the_discs(disc_set, tmp_path):
    out = train(_cfg(disc_set, epochs=4, steps_per_epoch=6, tile_size=64, lr=5e-3), tmp_path / "w")
    assert load_model(str(out)).meta.provenance["metrics"]["f1"] > 0.6


def test_early_stopping(disc_set, tmp_path, tiny_checkpoint):
    # A vanishing learning rate with frozen statistics: validation F1 cannot improve, so patience 1 stops at the
    # first epoch of the schedule's second half (epoch 3 of 6).
    cfg = _cfg(disc_set, base=str(tiny_checkpoint), strategy="full", lr=1e-12, epochs=6, patience=1)
    out = train(cfg, tmp_path / "w")
    assert [r["epoch"] for r in _metrics(tmp_path / "w")] == [1, 2, 3]
    assert load_model(str(out)).meta.provenance["stopped"] == "early stopping"
    # Without validation the run is a fixed schedule: no early stopping on the training loss, all 6 epochs run.
    out = train(_cfg(disc_set, base=str(tiny_checkpoint), strategy="full", lr=1e-12, epochs=6, patience=1,
                     validation="none"), tmp_path / "w2")
    assert [r["epoch"] for r in _metrics(tmp_path / "w2")] == [1, 2, 3, 4, 5, 6]
    assert load_model(str(out)).meta.provenance["stopped"] != "early stopping"


def test_time_budget(disc_set, tmp_path):
    # patience high: on a fast machine early stopping could otherwise end the run before the budget does
    out = train(_cfg(disc_set, epochs=None, minutes=0.04, steps_per_epoch=2, clock="cpu", patience=10_000),
                tmp_path / "w")
    prov = load_model(str(out)).meta.provenance
    assert prov["stopped"] == "time" and prov["seconds"] < 30
    lines = _metrics(tmp_path / "w")
    assert lines and all(r["clock"] == "cpu" and r["wall_seconds"] >= 0 for r in lines)
    # a budget too small for even one step still runs one step and writes a result
    out = train(_cfg(disc_set, epochs=None, minutes=1e-5), tmp_path / "w2")
    assert _metrics(tmp_path / "w2")[0]["step"] == 1 and load_model(str(out)).meta.provenance["stopped"] == "time"


def test_cancel_keeps_state_and_best(disc_set, tmp_path):
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 4  # during epoch 2

    out = train(_cfg(disc_set, epochs=5), tmp_path / "w", should_stop=stop)
    assert load_model(str(out)).meta.provenance["stopped"] == "cancelled"
    assert [r["epoch"] for r in _metrics(tmp_path / "w")] == [1]
    assert json.loads((tmp_path / "w" / "last" / "state.json").read_text())["info"]["epoch"] == 1


def test_resume_continues_from_the_last_epoch_exactly(disc_set, tmp_path):
    cfg = _cfg(disc_set, epochs=3, cpu_threads=1)
    train(cfg, tmp_path / "straight")
    calls = {"n": 0}

    def crash():
        calls["n"] += 1
        return calls["n"] > 7  # dies in epoch 3, after 2 epochs were saved

    train(cfg, tmp_path / "resumed", should_stop=crash)
    assert [r["epoch"] for r in _metrics(tmp_path / "resumed")] == [1, 2]
    (tmp_path / "resumed" / "metrics.jsonl").open("a").write('{"epoch": 3, "cut')  # a line cut by the crash
    train(cfg, tmp_path / "resumed", resume=True)
    lines = _metrics(tmp_path / "resumed")
    assert [r["epoch"] for r in lines] == [1, 2, 3] and lines[-1]["step"] == 9
    a = load_file(str(tmp_path / "straight" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "last" / "model.safetensors"))
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    assert "resumed from last at epoch 2" in (tmp_path / "resumed" / "train.log").read_text()


def test_resume_refuses_changed_data_and_starts_fresh_without_state(disc_set, tmp_path):
    images, masks = disc_set
    own = tmp_path / "set"
    shutil.copytree(images.parent, own)
    cfg = _cfg((own / "images", own / "masks"), epochs=1)
    train(cfg, tmp_path / "w")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(own / "masks" / "img0.png")
    with pytest.raises(JobError, match="labelled set changed"):
        train(cfg, tmp_path / "w", resume=True)
    train(cfg, tmp_path / "fresh", resume=True)  # nothing to resume: starts from the beginning
    assert "no saved state" in (tmp_path / "fresh" / "train.log").read_text()


def test_state_swap_cut_short_is_recovered(disc_set, tmp_path):
    train(_cfg(disc_set, epochs=1), tmp_path / "w")
    # simulate a kill between the two renames of the atomic swap: only the old copy exists
    (tmp_path / "w" / "last").rename(tmp_path / "w" / ".last.old-123")
    assert find_state(tmp_path / "w") == tmp_path / "w" / ".last.old-123"
    shutil.rmtree(tmp_path / "w" / ".last.old-123")
    assert find_state(tmp_path / "w") is None


def test_out_of_memory_halves_the_batch(disc_set, tmp_path, monkeypatch):
    """CUDA OOM cannot happen on a CPU runner, so the error is injected into the first step."""
    real = L._step
    state = {"n": 0}

    def flaky(model, strat, opt, loss_fn, xb, *a, **k):
        state["n"] += 1
        if xb.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real(model, strat, opt, loss_fn, xb, *a, **k)

    monkeypatch.setattr(L, "_step", flaky)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    train(_cfg(disc_set, epochs=1, batch_size=4), tmp_path / "w")
    assert _metrics(tmp_path / "w")[0]["batch_size"] == 1
    assert "retrying with 2" in (tmp_path / "w" / "train.log").read_text()

    def always(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(L, "_step", always)
    with pytest.raises(JobError, match="out of memory even at batch size 1 on cpu"):
        train(_cfg(disc_set, epochs=1, batch_size=2), tmp_path / "w2")


def test_bad_data_is_a_data_error(disc_set, tmp_path):
    with pytest.raises(DataError, match="not found"):
        train(_cfg(disc_set, masks=str(tmp_path / "none")), tmp_path / "w")


def test_multiclass_masks_reinitialise_the_head(tmp_path, tiny_checkpoint):
    images, masks = write_three_class_set(tmp_path / "mc", n=3, size=48)
    cfg = TrainConfig(images=str(images), masks=str(masks), base=str(tiny_checkpoint), strategy="full",
                      epochs=1, steps_per_epoch=2, batch_size=2, tile_size=32, pixel_size_nm=0.05)
    ck = load_model(str(train(cfg, tmp_path / "w")))
    assert ck.spec.classes == 3 and ck.meta.class_names == ["background", "class1", "class2"]
    assert "head reinitialised" in ck.meta.provenance["head_reinitialised"]


def test_pretrained_parameters_can_train_at_a_share_of_the_rate(tmp_path, tiny_checkpoint):
    """base_lr_factor: what came from the base steps at that share of the scheduled rate, the new head at all of it
    (two optimizer groups, kept in the resume state); 1 keeps one group, as from scratch."""
    images, masks = write_three_class_set(tmp_path / "mc", n=3, size=48)  # 3 classes: the base's head is new
    cfg = TrainConfig(images=str(images), masks=str(masks), base=str(tiny_checkpoint), strategy="full",
                      epochs=1, steps_per_epoch=2, batch_size=2, tile_size=32, pixel_size_nm=0.05, base_lr_factor=0.1)
    train(cfg, tmp_path / "w")
    groups = json.loads((find_state(tmp_path / "w") / "state.json").read_text())["param_groups"]
    assert [g["lr_scale"] for g in groups] == [1.0, 0.1]
    assert groups[1]["lr"] == pytest.approx(0.1 * groups[0]["lr"]) and groups[0]["lr"] > 0
    assert len(groups[0]["params"]) == 2  # the new head: weight and bias
    model = load_model(str(tiny_checkpoint)).model
    assert len(L.param_groups(model, {n for n, _ in model.named_parameters()}, 1.0)) == 1
    with pytest.raises(Exception, match="base lr factor"):
        TrainConfig(images=str(images), masks=str(masks), base_lr_factor=0).validate()


def test_denoising_chain(disc_set, tmp_path):
    images, masks = disc_set
    den = pretrain_denoise(images, tmp_path / "denoiser", epochs=1, steps_per_epoch=2, batch_size=2, tile_size=32)
    dck = load_model(str(den))
    assert dck.meta.task == "denoising" and dck.meta.provenance["metrics"]["psnr"] > 0
    assert dck.meta.provenance["lineage"] == []
    cfg = _cfg(disc_set, base=str(den), strategy="full", epochs=1)
    ck = load_model(str(train(cfg, tmp_path / "w")))
    prov = ck.meta.provenance
    assert "the base is a denoising model" in prov["head_reinitialised"]
    assert prov["lineage"][-1]["model"] == str(den) and prov["lineage"][-1]["task"] == "denoising"
    # everything but the head came from the denoiser
    a, b = load_file(str(den / "model.safetensors")), load_file(str(tmp_path / "w" / "best" / "model.safetensors"))
    assert not torch.equal(a["segmentation_head.0.weight"], b["segmentation_head.0.weight"])


def test_masked_reconstruction_learns_from_the_hidden_blocks_only(disc_set, tmp_path):
    """corruption "mask": the loss counts hidden pixels only, the run trains and validates real steps, and the
    result is a denoising-task base that fine-tuning takes like a Poisson one."""
    from temzoo.train.augment import block_mask, masked_loss

    g = torch.Generator().manual_seed(0)
    hidden = block_mask(4, 40, 56, 0.5, 8, g)
    assert hidden.shape == (4, 1, 40, 56) and set(hidden.unique().tolist()) <= {0.0, 1.0}
    assert 0.3 < float(hidden.mean()) < 0.7
    target = torch.randn(4, 1, 40, 56)
    wrong_where_visible = target + (1 - hidden) * 5.0  # errors only where the net could see the answer
    assert float(masked_loss(torch.nn.functional.mse_loss, wrong_where_visible, target, hidden)) == 0.0
    wrong_where_hidden = target + hidden * 2.0
    assert float(masked_loss(torch.nn.functional.mse_loss, wrong_where_hidden, target, hidden)) == pytest.approx(4.0)

    images, _ = disc_set
    den = pretrain_denoise(images, tmp_path / "masked", epochs=2, steps_per_epoch=2, batch_size=2, tile_size=32,
                           corruption="mask", mask_patch=8)
    dck = load_model(str(den))
    assert dck.meta.task == "denoising" and dck.meta.provenance["config"]["corruption"] == "mask"
    card = (den / "README.md").read_text()  # the card names the method it used, not Poisson denoising
    assert dck.meta.description.startswith("Masked-reconstruction pretraining")
    assert "SimMIM" in card and "Kazimi" not in card and "(the reconstructed image)" in card
    psnrs = [json.loads(line)["val_psnr"] for line in (den / "metrics.jsonl").read_text().splitlines()]
    assert len(psnrs) == 2 and all(math.isfinite(p) and p > 0 for p in psnrs)
    ck = load_model(str(train(_cfg(disc_set, base=str(den), strategy="full", epochs=1), tmp_path / "w")))
    assert "the base is a denoising model" in ck.meta.provenance["head_reinitialised"]
    with pytest.raises(TemzooError, match="corruption 'mask' is for the denoising task"):
        _cfg(disc_set, corruption="mask").validate()
    with pytest.raises(TemzooError, match="unknown corruption"):
        _cfg(disc_set, corruption="blur").validate()
    with pytest.raises(DataError, match="mask ratio"):
        _cfg(disc_set, mask_ratio=1.0).validate()


def test_working_pixel_size_follows_a_near_base_and_ignores_a_far_one(disc_set, tmp_path, tiny_checkpoint):
    near = L.build_setup(_cfg(disc_set, base=str(tiny_checkpoint), strategy="full", pixel_size_nm=0.1))
    assert near.target_pixel_size_nm == 0.05 and near.train[0].image.shape == (128, 128)  # 64 px at 0.1 -> 0.05
    far = L.build_setup(_cfg(disc_set, base=str(tiny_checkpoint), strategy="full", pixel_size_nm=1.0, downsample=2))
    assert far.target_pixel_size_nm == 2.0 and far.train[0].image.shape == (32, 32)
    assert any("too far apart to resample" in n for n in far.notes)
    with pytest.raises(DataError, match="after resampling"):
        L.build_setup(_cfg(disc_set, target_pixel_size_nm=0.001, pixel_size_nm=1.0))


def test_uncalibrated_downsample_travels_with_the_model(disc_set, tmp_path):
    """Trained at half resolution on images without a pixel size: the model says so, and prediction shrinks alike."""
    from temzoo.predict import predict
    from temzoo.types import Micrograph

    out = train(_cfg(disc_set, epochs=1, steps_per_epoch=1, downsample=2), tmp_path / "w")
    ck = load_model(str(out))
    assert ck.meta.pixel_size_nm is None and ck.meta.input_downsample == 2
    assert "1/2 of its training images' resolution" in (out / "README.md").read_text()
    pred = predict(ck, Micrograph(np.random.default_rng(0).normal(size=(64, 80)).astype(np.float32), None))
    assert pred.info["scale_factor"] == 0.5 and pred.probability.shape == (64, 80)
    assert any("shrunk 2x like its training images" in w for w in pred.warnings)
    plain = train(_cfg(disc_set, epochs=1, steps_per_epoch=1), tmp_path / "w1", out=tmp_path / "m1")
    assert load_model(str(plain)).meta.input_downsample == 1.0


def test_the_base_is_kept_when_no_epoch_beats_it(disc_set, tmp_path):
    """The base is scored before training (epoch 0): a fine-tune never hands back something worse on validation."""
    base = train(_cfg(disc_set, epochs=4, steps_per_epoch=6, tile_size=64, lr=5e-3), tmp_path / "b",
                 out=tmp_path / "base")
    # a learning rate far too high wrecks the weights within two steps: validation gets worse, the base comes back
    out = train(_cfg(disc_set, base=str(base), strategy="full", epochs=1, steps_per_epoch=2, lr=5.0),
                tmp_path / "w", out=tmp_path / "ft")
    a, b = load_file(str(base / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    prov = load_model(str(out)).meta.provenance
    assert prov["best_epoch"] == 0 and prov["epochs_run"] == 1
    assert any(n.startswith("base before fine-tuning: val F1") for n in prov["notes"])
    assert any("no epoch beat the base" in n for n in prov["notes"])
    assert [r["epoch"] for r in _metrics(tmp_path / "w")] == [1]  # the curve holds trained epochs only
    from temzoo.train import jobs

    assert jobs.base_kept_note(out).startswith("no epoch beat the base")  # what the Fine-tune/Compare pages show
    assert jobs.base_kept_note(base) is None and jobs.base_kept_note(tmp_path / "missing") is None
    # a sensible fine-tune from the same base is judged against it and may replace it
    good = train(_cfg(disc_set, base=str(base), strategy="full", epochs=2, steps_per_epoch=4, tile_size=64, lr=1e-3),
                 tmp_path / "w2", out=tmp_path / "ft2")
    notes = load_model(str(good)).meta.provenance["notes"]
    assert any(n.startswith("base before fine-tuning") for n in notes)


def test_a_half_resolution_base_is_fine_tuned_and_scored_at_its_own_scale(disc_set, tmp_path):
    """A base that records input_downsample 2 (like uo2-grain-boundaries) fine-tunes at half resolution unless told
    otherwise, and its result records the factor, so evaluation shrinks the test images alike (issue 13)."""
    base = train(_cfg(disc_set, epochs=1, steps_per_epoch=1, downsample=2), tmp_path / "b", out=tmp_path / "base")
    setup = L.build_setup(_cfg(disc_set, base=str(base), strategy="full"))
    assert setup.downsample == 2 and setup.train[0].image.shape == (32, 32)  # 64 px images at half resolution
    out = train(_cfg(disc_set, base=str(base), strategy="full", epochs=1, steps_per_epoch=1), tmp_path / "w",
                out=tmp_path / "ft")
    assert load_model(str(out)).meta.input_downsample == 2
    # an explicit factor still wins, and scratch (random weights) has no scale to inherit
    assert L.build_setup(_cfg(disc_set, base=str(base), strategy="full", downsample=1)).train[0].image.shape == (64, 64)
    assert L.build_setup(_cfg(disc_set, base=str(base), strategy="scratch")).downsample == 1


def test_region_validation_trains_on_every_image(disc_set, tmp_path):
    """validation="regions": each image gives a disjoint band to validation and the rest to training."""
    setup = L.build_setup(_cfg(disc_set, validation="regions", val_fraction=0.25))
    assert sorted(s.name for s in setup.train) == sorted(s.name for s in setup.val) and len(setup.train) == 4
    for t, v in zip(setup.train, setup.val):
        assert t.image.size + v.image.size == 64 * 64 and v.image.size == 16 * 64
    assert "every image trains" in setup.split
    whole = L.build_setup(_cfg(disc_set, validation="image"))  # one whole image of 4 validates
    assert TrainConfig.validation == "regions"  # the default since 2026-12-05
    assert len(whole.train) == 3 and len(whole.val) == 1
    none = L.build_setup(_cfg(disc_set, validation="none"))
    assert len(none.train) == 4 and not none.val
    out = train(_cfg(disc_set, validation="regions", epochs=1, steps_per_epoch=1), tmp_path / "w")
    prov = load_model(str(out)).meta.provenance
    assert len(prov["train_images"]) == 4 and prov["val_images"] == prov["train_images"]
    with pytest.raises(Exception, match="unknown validation"):
        _cfg(disc_set, validation="tiles").validate()
    # Images too small for a band (25 % of 48 px < 16 px) would leave nothing to validate: whole images do.
    small = write_disc_set(tmp_path / "small", n=3, size=48)
    tiny = L.build_setup(TrainConfig(images=str(small[0]), masks=str(small[1]), validation="regions"))
    assert len(tiny.val) == 1 and len(tiny.train) == 2 and tiny.split.startswith("images too small for validation")


def test_validation_f1_is_evaluates_f1(disc_set, tmp_path, tiny_checkpoint):
    """#15: validation runs the net as ``evaluate`` does (temzoo.predict.model_maps) and counts pixels with the same
    function (temzoo.metrics.confusion_counts): same F1/IoU to 1e-6 on the same images, and its loss is the loss of
    the maps evaluate sees (fed back as logit(p))."""
    from temzoo.io import read_micrograph
    from temzoo.metrics import evaluate_folders
    from temzoo.predict import predict
    from temzoo.train import data as D
    from temzoo.zoo.checkpoint import load_checkpoint

    ck = load_checkpoint(tiny_checkpoint)
    px = ck.meta.pixel_size_nm
    images, masks = disc_set
    samples = D.prepare(D.read_set(images, masks, pixel_size_nm=px), px, ck.meta.norm)
    cfg = TrainConfig(images=str(images), masks=str(masks))
    loss_fn = L.make_loss(cfg, 1)
    val = L.evaluate_samples(ck.model, samples, ck.spec, cfg, torch.device("cpu"), loss_fn)
    ev = evaluate_folders(ck, images, masks, pixel_size_nm=px)
    assert 0 < ev["f1"] < 1  # a score that can differ
    assert val["val_f1"] == pytest.approx(ev["f1"], abs=1e-6) and val["val_iou"] == pytest.approx(ev["iou"], abs=1e-6)
    losses = []
    for s in samples:
        mg = read_micrograph(images / f"{s.name}.png")
        p = torch.from_numpy(predict(ck, mg.with_data(mg.data, pixel_size_nm=px)).probability).clamp(1e-6, 1 - 1e-6)
        logit = (torch.log(p) - torch.log1p(-p))[None, None]
        losses.append(float(loss_fn(logit, torch.from_numpy(s.mask)[None, None])))
    assert val["val_loss"] == pytest.approx(np.mean(losses), rel=1e-5)  # images of one size: the plain mean


def test_multiclass_validation_f1_is_evaluates_pixel_f1(tmp_path):
    """#15: a 3-class net: validation's pooled F1 (argmax, classes 1..C-1) is what temzoo.metrics.pixel_counts
    gives for predict's probabilities, the per-image rule of evaluate."""
    from temzoo.io import read_micrograph
    from temzoo.io.masks import read_mask
    from temzoo.metrics import PixelCounts, pixel_counts
    from temzoo.predict import predict
    from temzoo.train import data as D
    from temzoo.zoo.checkpoint import load_checkpoint, save_checkpoint
    from temzoo.zoo.meta import ModelSpec, TemzooMeta

    images, masks = write_three_class_set(tmp_path / "mc", n=3, size=80)
    torch.manual_seed(1)
    spec = ModelSpec(classes=3)
    meta = TemzooMeta(pixel_size_nm=0.05, tile_size=256, class_names=["background", "a", "b"])
    ck = load_checkpoint(save_checkpoint(spec.build().eval(), tmp_path / "ck", meta))
    samples = D.prepare(D.read_set(images, masks, pixel_size_nm=0.05), 0.05, ck.meta.norm)
    cfg = TrainConfig(images=str(images), masks=str(masks))
    val = L.evaluate_samples(ck.model, samples, ck.spec, cfg, torch.device("cpu"), L.make_loss(cfg, 3))
    pooled = PixelCounts()
    for s in samples:
        mg = read_micrograph(images / f"{s.name}.png")
        prob = predict(ck, mg.with_data(mg.data, pixel_size_nm=0.05)).probability
        assert prob.shape == (3, 80, 80)
        pooled = pooled + pixel_counts(prob, read_mask(masks / f"{s.name}.png"))
    assert 0 < pooled.scores()["f1"] < 1
    assert val["val_f1"] == pytest.approx(pooled.scores()["f1"], abs=1e-6)
    assert val["val_iou"] == pytest.approx(pooled.scores()["iou"], abs=1e-6) and np.isfinite(val["val_loss"])
