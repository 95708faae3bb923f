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


def test_float16_storage_halves_the_file_and_keeps_the_predictions(tmp_path):
    """store_float16 (how the bundled large base ships): half the bytes, loadable by temzoo and plain smp, logits
    within float16's rounding of the float32 original; a weight float16 cannot hold is refused, file untouched."""
    import segmentation_models_pytorch as smp
    from safetensors import safe_open

    from temzoo.zoo.checkpoint import TemzooMeta, load_checkpoint, save_checkpoint, store_float16

    torch.manual_seed(0)
    model = ModelSpec.preset("large").build()
    model.train()
    with torch.no_grad():  # give BatchNorm real running statistics, as a trained base has
        model(torch.randn(4, 1, 64, 64, generator=torch.Generator().manual_seed(1)))
    model.eval()
    folder = save_checkpoint(model, tmp_path / "large", TemzooMeta())
    before = (folder / "model.safetensors").stat().st_size
    store_float16(folder)
    after = (folder / "model.safetensors").stat().st_size
    assert 0.49 < after / before < 0.51
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"F16", "I64"}  # num_batches_tracked stays an integer
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x)
        plain = smp.from_pretrained(str(folder)).eval()(x)
        ours = load_checkpoint(folder).model(x)
    assert plain.dtype == torch.float32 and torch.equal(plain, ours)
    assert not torch.equal(plain, ref)  # the weights really changed precision ...
    assert float((plain - ref).abs().max()) < 2e-3 * float(ref.abs().max())  # ... by float16's rounding only

    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first].view(-1)[0] = 1e6
    model.load_state_dict(state)
    big = save_checkpoint(model, tmp_path / "big", TemzooMeta())
    kept = (big / "model.safetensors").read_bytes()
    with pytest.raises(ModelError, match="beyond float16's range"):
        store_float16(big)
    assert (big / "model.safetensors").read_bytes() == kept
    assert [p.name for p in big.iterdir() if p.name.startswith(".")] == []


def test_the_bundled_large_base_loads_in_plain_smp_and_fine_tunes_on_cpu(disc_set, tmp_path):
    """Issue 13: the large net is in the zoo (float16 on disk), loads with plain ``smp.from_pretrained``, its card
    says where and how long it trained and what it never saw, and it fine-tunes on a CPU (real steps)."""
    import segmentation_models_pytorch as smp

    from temzoo.zoo.checkpoint import load_checkpoint
    from temzoo.zoo.sources import resolve

    folder, _ = resolve("generalist-tem-large")
    config = json.loads((folder / "config.json").read_text())
    assert config["encoder_depth"] == 5 and config["encoder_weights"] is None
    ck = load_checkpoint(folder)
    prov = ck.meta.provenance
    assert ck.spec.size == "large" and prov["size"] == "large" and prov["total_parameters"] > 14e6
    assert prov["weights_dtype"] == "float16" and prov["held_out"] == "uo2-grain-boundaries"
    assert len(ck.meta.class_names or []) > 2  # multi-class: one class per kind of structure
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(smp.from_pretrained(str(folder)).eval()(x), ck.model(x))
    card = (folder / "README.md").read_text()
    assert "Trained on: cpu" in card and "## Training chunks" in card and "uo2-grain-boundaries" in card

    images, masks = disc_set
    out = tmp_path / "tuned"
    assert main(["finetune", "--images", str(images), "--masks", str(masks), "--base", "generalist-tem-large",
                 "--strategy", "full", "--out", str(out), "--epochs", "1", "--tile-size", "32", "--batch-size", "2",
                 "--device", "cpu", "--quiet"]) == 0
    tuned = json.loads((out / "config.json").read_text())
    assert tuned["encoder_depth"] == 5 and tuned["classes"] == 1
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] >= 16 and rows[0]["train_loss"] > 0
    lineage = json.loads((out / "temzoo.json").read_text())["provenance"]
    assert "generalist-tem-large" in json.dumps(lineage)
