"""Issue #12, class 8: untrusted checkpoint folders are validated before anything large is built or trusted.

Fails on the main of 2026-12-04 (checked with ``PYTHONPATH=/work/main``): a ``temzoo.json`` that is a list or a
string escaped as AttributeError, NaN / string pixel sizes and reversed clip percentiles loaded silently, a config
asking for 8192-channel decoders or a ViT-giant encoder was built (gigabytes) before any weight was checked, NaN
weights loaded without a word, and a killed install's ``.partial`` folder was listed as a model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from temzoo.errors import ModelError
from temzoo.zoo.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    import torch

    from temzoo.zoo.checkpoint import ModelSpec, TemzooMeta, save_checkpoint

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("trust") / "tiny"
    return save_checkpoint(ModelSpec().build().eval(), folder, TemzooMeta(pixel_size_nm=0.05, tile_size=256))


def _copy(ckpt: Path, tmp_path: Path, name: str = "m") -> Path:
    dst = tmp_path / name
    shutil.copytree(ckpt, dst)
    return dst


def _edit_json(folder: Path, file: str, text: str) -> Path:
    (folder / file).write_text(text)
    return folder


META_CASES = [
    ("[]", "temzoo.json must be a JSON object, got list"),
    ('"segmentation"', "temzoo.json must be a JSON object, got str"),
    ('{"pixel_size_nm": NaN}', "pixel_size_nm must be a finite number"),
    ('{"pixel_size_nm": "0.05"}', "pixel_size_nm must be a number, got '0.05'"),
    ('{"pixel_size_nm": -1}', "pixel_size_nm must be"),
    ('{"normalization": {"method": "standardize", "clip_percentiles": [99, 1]}}', "low < high"),
    ('{"normalization": {"clip_percentiles": ["a", 1]}}', "clip_percentiles must be a number"),
    ('{"normalization": "standardize"}', "normalization must be a JSON object"),
    ('{"normalization": {"method": "zscore"}}', "method must be one of standardize, none"),
    ('{"class_names": "background"}', "class_names must be a list"),
    ('{"class_kinds": ["blobs"]}', "class_kinds must be a list"),
    ('{"tile_size": 1e300}', "tile_size must be"),
    ('{"input_downsample": Infinity}', "input_downsample must be a finite number"),
    ('{"task": ["segmentation"]}', "task must be one of"),
    ('{"provenance": []}', "provenance must be a JSON object"),
    ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    (b"\xff\xfe{".decode("latin-1"), "is not valid JSON"),
]


@pytest.mark.parametrize("text,match", META_CASES)
def test_bad_temzoo_json_is_one_line_naming_the_field(ckpt, tmp_path, text, match):
    folder = _edit_json(_copy(ckpt, tmp_path), "temzoo.json", text)
    with pytest.raises(ModelError, match=match) as err:
        load_checkpoint(folder)
    assert "temzoo.json" in str(err.value) and "\n" not in str(err.value)


def _config(ckpt: Path, **changes) -> str:
    cfg = json.loads((ckpt / "config.json").read_text())
    return json.dumps({**cfg, **changes})


CONFIG_CASES = [
    ({"decoder_channels": [8192, 8192, 8192]}, "decoder_channels must be in \\[1, 1024\\]"),
    ({"encoder_name": "not-a-net"}, "encoder_name 'not-a-net' is not an encoder"),
    ({"encoder_name": "tu-vit_giant_patch14_224"}, "smp cannot build"),  # a timm model, but not a U-Net encoder
    ({"encoder_name": "tu-regnety_1280"}, "does not match its config.json"),  # a 600 M timm CNN, built on meta only
    ({"_model_class": "DPT"}, "_model_class 'DPT' is not an architecture"),
    ({"encoder_depth": 9}, "encoder_depth must be in \\[1, 5\\]"),
    ({"decoder_channels": [64, 32]}, "decoder_channels must be a list of 3 numbers"),
    ({"classes": "1"}, "classes must be a number, got '1'"),
    ({"in_channels": True}, "in_channels must be a number"),
    ({"encoder_name": "tu-resnet101", "encoder_depth": 5, "decoder_channels": [1024] * 5}, "164 M-parameter network"),
]


@pytest.mark.parametrize("changes,match", CONFIG_CASES)
def test_config_is_bounded_before_building(ckpt, tmp_path, changes, match):
    folder = _edit_json(_copy(ckpt, tmp_path), "config.json", _config(ckpt, **changes))
    with pytest.raises(ModelError, match=match) as err:
        load_checkpoint(folder)
    assert "config.json" in str(err.value) and "\n" not in str(err.value)


def test_config_larger_than_its_weights_is_refused_without_building_it(ckpt, tmp_path):
    """A config inside every range (ResNet-101, depth 5, 512-channel decoder: 82 M parameters) whose weights file
    holds the tiny network: refused from the header, with the network only ever built on the meta device."""
    folder = _edit_json(_copy(ckpt, tmp_path), "config.json", _config(
        ckpt, encoder_name="tu-resnet101", encoder_depth=5, decoder_channels=[512, 512, 512, 512, 512]))
    code = ("import resource, sys\nfrom temzoo.errors import ModelError\nfrom temzoo.zoo.checkpoint import "
            "load_checkpoint\nimport torch, segmentation_models_pytorch\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n    load_checkpoint(sys.argv[1])\nexcept ModelError as e:\n    print('error:', e)\n"
            "print('grew_mb', (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "does not match its config.json" in out.stdout, out.stdout + out.stderr
    grew = int(out.stdout.split("grew_mb")[1])
    assert grew < 150, f"the loader allocated {grew} MB for a network it refused"


def test_header_lying_about_a_shape_and_nan_weights_are_refused(ckpt, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(ckpt / "model.safetensors"))
    key = next(k for k, v in state.items() if v.ndim == 4)
    lying = _copy(ckpt, tmp_path, "lying")
    save_file({**state, key: torch.zeros(state[key].shape[0], 2, 1, 1)}, str(lying / "model.safetensors"))
    with pytest.raises(ModelError, match=f"does not match its config.json .*{key}"):
        load_checkpoint(lying)
    nan = _copy(ckpt, tmp_path, "nan")
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()},
              str(nan / "model.safetensors"))
    with pytest.raises(ModelError, match="non-finite weights"):
        load_checkpoint(nan)
    one = _copy(ckpt, tmp_path, "one")
    save_file({**state, key: state[key].clone().index_fill_(0, torch.tensor([0]), float("inf"))},
              str(one / "model.safetensors"))
    with pytest.raises(ModelError, match=f"1 tensors, e.g. {key}"):
        load_checkpoint(one)


def test_partial_and_hidden_folders_are_not_models(ckpt, tmp_path, monkeypatch):
    from temzoo.zoo.sources import list_models

    monkeypatch.setenv("TEMZOO_HOME", str(tmp_path / "home"))
    zoo = tmp_path / "home" / "zoo"
    zoo.mkdir(parents=True)
    shutil.copytree(ckpt, zoo / ".mine.4242.partial")
    shutil.copytree(ckpt, zoo / "mine.partial")
    shutil.copytree(ckpt, zoo / ".mine.old-4242")
    shutil.copytree(ckpt, zoo / "mine")
    local = sorted(m.id for m in list_models(hub=False) if m.source == "local")
    assert local == ["mine"]
