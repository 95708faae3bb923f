"""Class-matched head (temzoo.train.headmatch): a binary fine-tune from a multi-class base starts from the base's
class that already finds the labelled structure, chosen on the training images only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from temzoo.train import TrainConfig, train
from temzoo.train.headmatch import binary_head_state, class_scores, match_class
from temzoo.zoo import load_model
from temzoo.zoo.checkpoint import ModelSpec
from tests.trainsets import write_disc_set


def _square_mask() -> np.ndarray:
    m = np.zeros((32, 32), np.uint8)
    m[8:16, 8:16] = 1
    return m


def test_match_class_picks_the_class_that_finds_the_mask():
    mask = _square_mask()
    logits = np.zeros((3, 32, 32), np.float32)
    logits[1, :, :4] = 5  # class 1 fires on a strip that is not the structure
    logits[2][mask > 0] = 5
    m = match_class([logits], [mask], ["background", "strip", "square"])
    assert m is not None and (m.index, m.name) == (2, "square") and m.f1 == 1.0
    assert "'square'" in m.note() and "all foreground" in m.note()


def test_class_scores_give_every_class_and_all_foreground():
    mask = _square_mask()  # 64 of 1024 pixels
    logits = np.zeros((3, 32, 32), np.float32)
    logits[2][mask > 0] = 5
    logits[1, 8:16, 8:12] = 9  # class 1 takes the left half of the square
    f1s, trivial = class_scores([logits, logits], [mask, mask])
    assert f1s[0] == 0.0 and abs(f1s[1] - 2 / 3) < 1e-6 and abs(f1s[2] - 2 / 3) < 1e-6
    assert abs(trivial - 2 * 64 / (64 + 1024)) < 1e-6


def test_no_class_is_chosen_when_none_beats_all_foreground():
    mask = _square_mask()
    logits = np.zeros((3, 32, 32), np.float32)
    logits[1][mask == 0] = 5  # the complement: worse than calling everything foreground
    logits[2, 0, 0] = 5
    assert match_class([logits], [mask], ["background", "a", "b"]) is None
    assert match_class([np.zeros((1, 32, 32), np.float32)], [mask], ["background", "fg"]) is None


def test_binary_head_gives_the_class_against_background_logit():
    spec = ModelSpec(classes=3)
    torch.manual_seed(0)
    multi = spec.build().eval()
    binary = replace(spec, classes=1).build().eval()
    state = multi.state_dict()
    own = {k: v for k, v in state.items() if not k.startswith("segmentation_head.")}
    binary.load_state_dict({**own, **binary_head_state(state, 2)})
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        z = multi(x)
        assert torch.allclose(binary(x)[:, 0], z[:, 2] - z[:, 0], atol=1e-4)


def test_finetune_from_a_multiclass_base_starts_from_the_matching_class(tmp_path):
    """Real training: a 3-class base learns discs as class 2 ('disc'); a binary disc fine-tune from it starts there."""
    images, masks = write_disc_set(tmp_path / "base", n=4, size=64)
    for p in masks.iterdir():
        Image.fromarray(((np.asarray(Image.open(p)) > 0) * 2).astype(np.uint8)).save(p)
    cfg = TrainConfig(images=str(images), masks=str(masks), strategy="scratch", epochs=6, steps_per_epoch=6,
                      batch_size=4, tile_size=64, pixel_size_nm=0.5, validation="none", seed=0,
                      class_names=["background", "stripe", "disc"])
    base = train(cfg, tmp_path / "wb")
    assert load_model(str(base)).spec.classes == 3
    images2, masks2 = write_disc_set(tmp_path / "target", n=2, size=64, seed=50)
    ft = TrainConfig(images=str(images2), masks=str(masks2), base=str(base), strategy="full", epochs=1,
                     steps_per_epoch=1, batch_size=2, tile_size=64, pixel_size_nm=0.5, validation="regions")
    ck = load_model(str(train(ft, tmp_path / "wf")))
    prov = ck.meta.provenance
    assert "class 'disc'" in prov["head_reinitialised"], prov
    notes = prov.get("notes", [])
    assert any("initialised from the base's class 'disc'" in n for n in notes), prov
    # the base with its matched head is the first candidate (epoch 0), scored on the validation band
    assert any(n.startswith("base before fine-tuning: val F1") for n in notes), notes
