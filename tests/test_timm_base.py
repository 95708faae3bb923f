"""``finetune --base timm:NAME`` against a loopback Hub serving a tiny timm-format repository built here
(``timm/test_resnet.r160_in1k``: timm's own 0.47 M-parameter test ResNet, random weights, written as
model.safetensors + config.json + README.md): download into the HF cache, first convolution summed to one channel,
fresh decoder, a few real training steps on CPU, lineage in temzoo.json and the card; a pickle-only repository is
refused; offline, one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub_server import LoopbackHub, Repo
from tests.trainsets import write_disc_set

REPO = Path(__file__).resolve().parent.parent
TIMM_REPO = "timm/test_resnet.r160_in1k"
PICKLE_REPO = "timm/test_efficientnet.r160_in1k"
SHA = "1234567890abcdef1234567890abcdef12345678"

CHECK = """
import json, sys, torch
from safetensors.torch import load_file
from temzoo.zoo.network import configure
assert configure(), "loopback hub should be reachable"
from temzoo.zoo import load_model
from temzoo.train.config import TrainConfig
from temzoo.train.loop import build_setup
served = load_file(sys.argv[1])
ck = load_model("timm:test_resnet")
enc = ck.model.encoder.model
first = enc.conv1[0].weight
out = {"task": ck.meta.task, "path": str(ck.path), "lineage": ck.meta.provenance["lineage"],
       "first_shape": list(first.shape),
       "first_is_rgb_sum": bool(torch.allclose(first, served["conv1.0.weight"].sum(1, keepdim=True))),
       "deep_equal": bool(torch.equal(enc.layer1[0].conv1.weight, served["layer1.0.conv1.weight"]))}
cfg = TrainConfig(images=sys.argv[2], masks=sys.argv[3], base="timm:test_resnet", strategy="full", epochs=1,
                  tile_size=32, device="cpu", seed=5)
setup = build_setup(cfg, log=lambda m: None)
m = setup.model
out["setup_first_is_rgb_sum"] = bool(torch.allclose(m.encoder.model.conv1[0].weight, first))
out["decoder_from_base"] = bool(torch.equal(m.decoder.state_dict()[next(iter(m.decoder.state_dict()))],
                                            ck.model.decoder.state_dict()[next(iter(m.decoder.state_dict()))]))
out["pretrained_decoder"] = sorted(k for k in setup.strategy.pretrained if not k.startswith("encoder."))
out["head_note"] = setup.head_reinitialised
print("RESULT " + json.dumps(out))
"""


def _timm_files(tmp: Path) -> dict[str, bytes]:
    """A timm Hub repository for ``test_resnet``: safetensors weights, timm's config.json layout, a licensed card."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(11)
    model = timm.create_model("test_resnet", pretrained=False)
    weights = tmp / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    cfg = timm.models.get_pretrained_cfg("test_resnet").to_dict()
    config = {"architecture": "test_resnet", "num_classes": 1000, "num_features": model.num_features,
              "pretrained_cfg": {k: v for k, v in cfg.items() if k in ("tag", "input_size", "mean", "std",
                                                                          "first_conv", "classifier", "license")}}
    config["pretrained_cfg"]["license"] = "apache-2.0"
    card = "---\nlicense: apache-2.0\nlibrary_name: timm\ntags:\n- image-classification\n- timm\n---\n# test_resnet\n"
    return {"model.safetensors": weights.read_bytes(), "config.json": json.dumps(config).encode(),
            "README.md": card.encode()}


def _env(hub_url: str | None, hf_home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(REPO))
    if hub_url:
        env.update(HF_ENDPOINT=hub_url, HF_HUB_OFFLINE="0")
    else:
        env.update(HF_HUB_OFFLINE="1")
    return env


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def disc_set(tmp_path_factory):
    return write_disc_set(tmp_path_factory.mktemp("discs"), n=4, size=64)


def test_timm_base_downloads_adapts_and_finetunes(disc_set, tmp_path):
    images, masks = disc_set
    files = _timm_files(tmp_path)
    (tmp_path / "served.safetensors").write_bytes(files["model.safetensors"])
    hf_home = tmp_path / "hf"
    with LoopbackHub() as hub:
        hub.state.repos[TIMM_REPO] = Repo(TIMM_REPO, files=files, sha=SHA, tags=["timm", "image-classification"])
        # A repository with pickle weights only: refused without downloading them.
        hub.state.repos[PICKLE_REPO] = Repo(PICKLE_REPO, sha=SHA, files={
            "pytorch_model.bin": b"not to be unpickled", "config.json": b'{"architecture": "test_efficientnet"}'})
        env = _env(hub.url, hf_home)

        out = _run(["-c", CHECK, str(tmp_path / "served.safetensors"), str(images), str(masks)], env)
        assert out.returncode == 0, out.stderr[-3000:]
        res = json.loads(out.stdout.split("RESULT ", 1)[1])
        assert res["task"] == "classification"
        assert res["first_shape"][1] == 1 and res["first_is_rgb_sum"] and res["deep_equal"]
        assert res["setup_first_is_rgb_sum"]  # the run starts from the adapted encoder ...
        assert not res["decoder_from_base"] and res["pretrained_decoder"] == []  # ... and its own fresh decoder
        assert "classification" in res["head_note"]
        assert res["lineage"] == [{"model": TIMM_REPO, "task": "ImageNet classification (timm)", "revision": SHA,
                                   "license": "apache-2.0"}]
        assert Path(res["path"]).is_relative_to(hf_home) and sorted(p.name for p in Path(res["path"]).iterdir()) \
            == ["README.md", "config.json", "model.safetensors"]
        assert f"GET /{TIMM_REPO}/resolve/{SHA}/model.safetensors" in hub.requests

        ft = tmp_path / "ft"
        out = _run(["-m", "temzoo", "finetune", "--images", str(images), "--masks", str(masks),
                    "--base", "timm:test_resnet", "--strategy", "full", "--out", str(ft), "--epochs", "1",
                    "--tile-size", "32", "--batch-size", "2", "--device", "cpu", "--quiet"], env)
        assert out.returncode == 0, out.stderr[-3000:]
        prov = json.loads((ft / "temzoo.json").read_text())["provenance"]
        assert prov["base_model"] == "timm:test_resnet" and prov["strategy"] == "full"
        assert prov["lineage"][0] == {"model": TIMM_REPO, "task": "ImageNet classification (timm)",
                                      "revision": SHA, "license": "apache-2.0"}
        assert prov["lineage"][1]["model"] == "timm:test_resnet"
        assert prov["head_reinitialised"] and "pretrained_parts" not in prov
        rows = [json.loads(x) for x in (ft / "metrics.jsonl").read_text().splitlines()]
        assert rows[0]["step"] >= 16 and rows[0]["train_loss"] > 0
        config = json.loads((ft / "config.json").read_text())
        assert config["encoder_name"] == "tu-test_resnet" and config["in_channels"] == 1
        assert config["encoder_weights"] is None
        card = (ft / "README.md").read_text()
        assert f"descends from: `{TIMM_REPO}`" in card and "license apache-2.0" in card and SHA in card

        out = _run(["-m", "temzoo", "finetune", "--images", str(images), "--masks", str(masks),
                    "--base", "timm:test_efficientnet", "--strategy", "full", "--out", str(tmp_path / "pk"),
                    "--epochs", "1", "--device", "cpu", "--quiet"], env)
        assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
        assert out.stderr.startswith(f"error: {PICKLE_REPO} offers no model.safetensors"), out.stderr
        assert f"GET /{PICKLE_REPO}/resolve/{SHA}/pytorch_model.bin" not in hub.requests
        assert not list(hf_home.rglob("*.bin")) and not (tmp_path / "pk").exists()

    # Hub gone: the cached base still loads offline, an uncached one is one line.
    out = _run(["-c", "from temzoo.zoo import load_model; print(load_model('timm:test_resnet').meta.task)"],
               _env(None, hf_home))
    assert out.returncode == 0 and out.stdout.strip() == "classification", out.stderr[-2000:]
    out = _run(["-m", "temzoo", "finetune", "--images", str(images), "--masks", str(masks), "--base",
                "timm:resnet34", "--strategy", "full", "--out", str(tmp_path / "off"), "--epochs", "1"],
               _env(None, hf_home))
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == ("error: timm:resnet34 needs the Hugging Face Hub: connect, or pick a bundled base "
                                  "(hrtem-nanoparticle, tem-denoise, uo2-grain-boundaries, steel-dislocation-loops, "
                                  "generalist-tem-large)")


def test_bench_transfer_skips_a_timm_base_offline_with_the_reason(capsys):
    from bench import bench_transfer as bt

    assert bt.base_folder("timm:resnet34", "sim", Path("unused")) == "timm:resnet34"  # never saw a micrograph
    assert bt.usable_bases(["scratch", "timm:resnet34", "generalist"]) == ["scratch", "generalist"]
    out = capsys.readouterr().out
    assert out == ("skipped base timm:resnet34: timm:resnet34 needs the Hugging Face Hub: connect, or pick a "
                   "bundled base (hrtem-nanoparticle, tem-denoise, uo2-grain-boundaries, steel-dislocation-loops, "
                   "generalist-tem-large)\n")


def test_a_timm_base_is_not_a_model_to_run():
    from temzoo.errors import ModelError
    from temzoo.zoo.sources import resolve

    with pytest.raises(ModelError, match="ImageNet encoder without a trained decoder: use it as finetune --base"):
        resolve("timm:resnet18")
