"""Network sizes (temzoo.zoo.meta.SIZES): small stays the CPU default, large is a full-depth U-Net that saves in
plain smp format, loads with ``smp.from_pretrained`` and fine-tunes on a CPU (real steps on a tiny set)."""

from __future__ import annotations

import json

import pytest
import torch

from temzoo.cli import main
from temzoo.errors import ModelError
from temzoo.train import config as train_config
from temzoo.zoo.meta import DEVICE_SIZE, SIZES, ModelSpec, size_for_device
from tests.trainsets import write_disc_set


@pytest.fixture(scope="module")
def disc_set(tmp_path_factory):
    return write_disc_set(tmp_path_factory.mktemp("discs"), n=4, size=64)


def test_size_names_agree_and_sizes_are_what_the_docs_say():
    assert tuple(SIZES) == train_config.SIZES  # the torch-free list the CLI offers is the registry's
    assert ModelSpec() == ModelSpec.preset("small") and ModelSpec().size == "small"
    counts = {name: sum(p.numel() for p in ModelSpec.preset(name).build().parameters()) for name in SIZES}
    assert 0.8e6 < counts["small"] < 0.9e6  # docs/ZOO_SIZES.md: 0.88 M
    assert 5e6 <= counts["large"] <= 25e6 and round(counts["large"] / 1e6, 1) == 14.3
    large = ModelSpec.preset("large")
    assert large.encoder_depth == 5 and large.stride == 32 and large.size == "large"
    # the head's class count does not change which size a network is; another encoder is no named size
    assert ModelSpec.preset("large").__class__(**{**large.__dict__, "classes": 3}).size == "large"
    assert ModelSpec(encoder_name="tu-resnet34", encoder_depth=5).size is None
    with pytest.raises(ModelError, match="unknown network size 'huge'"):
        ModelSpec.preset("huge")


def test_size_follows_the_device_unless_asked(monkeypatch):
    assert size_for_device(None, "cpu") == "small"
    assert size_for_device("large", "cpu") == "large"
    assert DEVICE_SIZE == {"cuda": "large", "cpu": "small"}
    # No GPU here: pretend torch sees one so that 'auto' resolves to CUDA (only the choice is exercised).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert size_for_device(None, "auto") == "large" and size_for_device(None, "cpu") == "small"


def test_large_round_trips_through_plain_smp(tmp_path):
    import segmentation_models_pytorch as smp

    from temzoo.zoo.checkpoint import TemzooMeta, load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = ModelSpec.preset("large").build().eval()
    folder = save_checkpoint(model, tmp_path / "large", TemzooMeta(pixel_size_nm=0.4))
    config = json.loads((folder / "config.json").read_text())
    assert config["encoder_weights"] is None and config["encoder_name"] == "tu-resnet18"
    assert config["encoder_depth"] == 5
    plain = smp.from_pretrained(str(folder)).eval()
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref, got = model(x), plain(x)
    assert torch.equal(ref, got)
    ck = load_checkpoint(folder)
    assert ck.spec.size == "large"
    with torch.no_grad():
        assert torch.equal(ck.model(x), ref)


def test_finetune_large_on_cpu_then_size_must_match_the_base(disc_set, tmp_path, capsys):
    images, masks = disc_set
    out = tmp_path / "large"
    assert main(["finetune", "--images", str(images), "--masks", str(masks), "--base", "scratch",
                 "--strategy", "scratch", "--size", "large", "--out", str(out), "--epochs", "1",
                 "--tile-size", "32", "--batch-size", "2", "--device", "cpu", "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["encoder_depth"] == 5 and config["encoder_weights"] is None
    meta = json.loads((out / "temzoo.json").read_text())
    prov = meta["provenance"]
    assert prov["size"] == "large" and prov["device"] == "cpu" and prov["device_name"].startswith("cpu")
    assert prov["total_parameters"] > 14e6
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] >= 16 and rows[0]["train_loss"] > 0  # real optimisation steps were taken
    card = (out / "README.md").read_text()
    assert "Trained on: cpu" in card and "size large" in card
    # The result is a base: fine-tuning from it keeps its network; asking for another size is a one-line error.
    capsys.readouterr()
    assert main(["finetune", "--images", str(images), "--masks", str(masks), "--base", str(out),
                 "--strategy", "full", "--size", "small", "--out", str(tmp_path / "again"), "--epochs", "1",
                 "--tile-size", "32", "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: size small does not apply") and "\n" not in err
    assert not (tmp_path / "again").exists()
