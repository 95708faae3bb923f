"""Checkpoint format: save -> load -> identical logits, plain smp loading, atomic saves, cards, pickle refusal."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from temzoo.errors import ModelError
from temzoo.zoo.checkpoint import ModelSpec, TemzooMeta, load_checkpoint, read_meta, save_checkpoint


def _logits(model, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 1, 64, 64, generator=g)
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model whose weights are not the initialisation (one real optimiser step), saved with metadata."""
    torch.manual_seed(3)
    spec = ModelSpec(classes=2)
    model = spec.build()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(2, 1, 64, 64)
    y = torch.randint(0, 2, (2, 64, 64))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    model.eval()
    meta = TemzooMeta(pixel_size_nm=0.08, class_names=["background", "particle"], tile_size=128,
                      receptive_field_px=77, description="round-trip test",
                      provenance={"metrics": {"f1": 0.5}, "strategy": "full", "base_model": "hrtem-nanoparticle"})
    folder = save_checkpoint(model, tmp_path_factory.mktemp("rt") / "ckpt", meta)
    return model, meta, folder


def test_save_load_identical_logits(trained):
    model, meta, folder = trained
    ckpt = load_checkpoint(folder)
    assert torch.equal(_logits(model), _logits(ckpt.model))
    assert ckpt.meta == meta
    assert ckpt.spec.classes == 2 and ckpt.spec.encoder_depth == 3
    assert not ckpt.model.training


def test_plain_smp_from_pretrained_loads_it(trained):
    import segmentation_models_pytorch as smp

    model, _, folder = trained
    config = json.loads((folder / "config.json").read_text())
    assert config["_model_class"] == "Unet" and config["encoder_weights"] is None
    plain = smp.from_pretrained(str(folder))
    assert torch.equal(_logits(model), _logits(plain))


def test_save_replaces_atomically_and_leaves_no_temp(trained, tmp_path):
    model, meta, _ = trained
    folder = tmp_path / "c"
    save_checkpoint(model, folder, meta, card="# first")
    save_checkpoint(model, folder, TemzooMeta(pixel_size_nm=0.2), card="# second")
    assert (folder / "README.md").read_text() == "# second"
    assert read_meta(folder).pixel_size_nm == 0.2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no .c.* temporaries left behind


class _Evil:
    """Unpickling this runs code: it writes a marker file (what a malicious checkpoint would do, harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pkl", "model.ckpt"])
def test_pickle_weights_are_refused_and_never_unpickled(tiny_checkpoint, tmp_path, name):
    import shutil

    from temzoo.zoo import load_model

    marker = tmp_path / "marker.txt"
    folder = tmp_path / "evil"
    shutil.copytree(tiny_checkpoint, folder)
    (folder / name).write_bytes(pickle.dumps(_Evil(marker)))
    # Sanity: the payload really does run code when unpickled (so the assertion below means something).
    probe = tmp_path / "probe.txt"
    pickle.loads(pickle.dumps(_Evil(probe)))
    assert probe.exists()
    for load in (load_checkpoint, load_model):
        with pytest.raises(ModelError, match="pickle"):
            load(str(folder))
    assert not marker.exists()


def test_broken_folders_give_one_line_errors(tmp_path, tiny_checkpoint):
    import shutil

    with pytest.raises(ModelError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="needs config.json"):
        load_checkpoint(empty)
    bad = tmp_path / "bad"
    shutil.copytree(tiny_checkpoint, bad)
    (bad / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="could not load weights") as err:
        load_checkpoint(bad)
    assert "\n" not in str(err.value)


def test_render_card_has_hub_header_and_body(trained):
    from huggingface_hub import ModelCard

    from temzoo.zoo.cards import card_is_valid, render_card

    _, meta, folder = trained
    ckpt = load_checkpoint(folder)
    text = render_card(meta, ckpt.spec, model_id="rt", repo_id="lab/rt", params=123)
    data = ModelCard(text).data.to_dict()
    assert data["library_name"] == "segmentation-models-pytorch"
    assert {"temzoo", "segmentation"} <= set(data["tags"])
    assert data["license"] == "mit"
    assert data["base_model"] == "temzoo/hrtem-nanoparticle"  # zoo id mapped to its Hub repo via the registry
    results = data["model-index"][0]["results"]
    assert results[0]["metrics"][0]["type"] == "f1" and results[0]["metrics"][0]["value"] == 0.5
    for section in ("## Intended use", "## Training data", "## Pixel size", "## Acquisition conditions",
                    "## How to load", "smp.from_pretrained(\"lab/rt\")", "## Limitations", "## Citation",
                    "0.08 nm/px", "Rangel DaCosta"):
        assert section in text
    assert card_is_valid(text)
    assert not card_is_valid("# no header")


def test_saved_folders_carry_a_temzoo_card(trained):
    from temzoo.zoo.cards import card_data

    _, _, folder = trained
    data = card_data((folder / "README.md").read_text())
    assert data["library_name"] == "segmentation-models-pytorch" and "temzoo" in data["tags"]
    assert data["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.5
