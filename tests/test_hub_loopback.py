"""Push to and download from a loopback Hub with the real ``huggingface_hub`` client, in subprocesses whose
environment (HF_ENDPOINT, HF_HUB_OFFLINE=0, a fake HF_TOKEN) is set before the client is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.hub_server import LoopbackHub

REPO = Path(__file__).resolve().parent.parent
TOKEN = "hf_LoopbackSecretToken1234567890"

DOWNLOAD = """
import sys, numpy as np, torch
from temzoo.zoo.network import configure
assert configure(), "loopback hub should be reachable"
from temzoo.zoo import list_models, load_model
before = {m.id: m.source for m in list_models() if m.id == "lab/tiny-tem"}
print("BEFORE", before)
calls = []
ckpt = load_model("lab/tiny-tem", progress=lambda f, text: calls.append(f))
print("PROGRESS", len(calls), calls[-1] if calls else None)
g = torch.Generator().manual_seed(7)
with torch.no_grad():
    y = ckpt.model(torch.randn(1, 1, 64, 64, generator=g))
np.save(sys.argv[1], y.numpy())
after = {m.id: m.source for m in list_models() if m.id == "lab/tiny-tem"}
print("AFTER", after)
print("PATH", ckpt.path)
"""


def _env(hub: LoopbackHub, hf_home: Path, token: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1")
    if token:
        env["HF_TOKEN"] = token
    return env


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=180)


def test_push_then_download_round_trips_and_never_leaks_the_token(tiny_checkpoint, tmp_path):
    import torch

    from temzoo.zoo.checkpoint import load_checkpoint

    hf_home = tmp_path / "hf"
    outputs = []
    with LoopbackHub(TOKEN) as hub:
        # 1. No token anywhere: a clear one-line error, nothing created.
        out = _run(["-m", "temzoo", "push", str(tiny_checkpoint), "--repo", "lab/tiny-tem"], _env(hub, hf_home, None))
        outputs.append(out.stdout + out.stderr)
        assert out.returncode == 2 and out.stderr.startswith("error: no Hugging Face token"), out.stderr
        assert not hub.state.repos

        # 2. Push with the token from the environment: one commit.
        out = _run(["-m", "temzoo", "push", str(tiny_checkpoint), "--repo", "lab/tiny-tem"], _env(hub, hf_home, TOKEN))
        outputs.append(out.stdout + out.stderr)
        assert out.returncode == 0, out.stderr
        assert "pushed" in out.stdout
        repo = hub.state.repos["lab/tiny-tem"]
        assert sorted(repo.files) == ["README.md", "config.json", "model.safetensors", "temzoo.json"]
        assert [r for r in hub.requests if "/commit/" in r] == ["POST /api/models/lab/tiny-tem/commit/main"]
        for f in ("config.json", "model.safetensors", "temzoo.json"):
            assert repo.files[f] == (tiny_checkpoint / f).read_bytes()
        card = repo.files["README.md"].decode()
        assert "library_name: segmentation-models-pytorch" in card and "temzoo" in repo.tags

        # 3. Download in a fresh process with no token: listed from the Hub first, then from the cache.
        logits = tmp_path / "logits.npy"
        out = _run(["-c", DOWNLOAD, str(logits)], _env(hub, hf_home, None))
        outputs.append(out.stdout + out.stderr)
        assert out.returncode == 0, out.stderr
        assert "BEFORE {'lab/tiny-tem': 'hub'}" in out.stdout
        assert "AFTER {'lab/tiny-tem': 'cache'}" in out.stdout
        assert "PROGRESS" in out.stdout and out.stdout.split("PROGRESS ")[1].split()[1] == "1.0", out.stdout
        requests = hub.requests
    for needed in ("POST /api/repos/create", "POST /api/validate-yaml", "POST /api/models/lab/tiny-tem/preupload/main",
                   "GET /api/models", "GET /api/models/lab/tiny-tem/revision/main",
                   "GET /lab/tiny-tem/resolve/"):
        assert any(r.startswith(needed) for r in requests), (needed, requests)
    # Only the allowed file types were fetched.
    fetched = {r.rsplit("/", 1)[-1] for r in requests if r.startswith("GET /lab/tiny-tem/resolve/")}
    assert fetched == {"README.md", "config.json", "model.safetensors", "temzoo.json"}

    ckpt = load_checkpoint(tiny_checkpoint)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        expected = ckpt.model(torch.randn(1, 1, 64, 64, generator=g)).numpy()
    np.testing.assert_array_equal(np.load(logits), expected)

    # The token never appears in any output, pushed file or anything under HF_HOME (cache, logs).
    assert all(TOKEN not in o for o in outputs)
    assert all(TOKEN.encode() not in data for data in repo.files.values())
    for p in hf_home.rglob("*"):
        if p.is_file():
            assert TOKEN.encode() not in p.read_bytes(), p


def test_push_refuses_pickles_and_bad_tokens(tiny_checkpoint, tmp_path):
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    with LoopbackHub(TOKEN) as hub:
        out = _run(["-m", "temzoo", "push", str(folder), "--repo", "lab/evil"], _env(hub, tmp_path / "hf", TOKEN))
        assert out.returncode == 2 and "pickle" in out.stderr, out.stderr
        (folder / "pytorch_model.bin").unlink()
        out = _run(["-m", "temzoo", "push", str(folder), "--repo", "lab/x"], _env(hub, tmp_path / "hf", "hf_wrong"))
        assert out.returncode == 2 and "refused the token" in out.stderr, out.stderr
        assert "hf_wrong" not in out.stderr
        assert not hub.state.repos


@pytest.fixture(autouse=True)
def _no_stray_hf_env(monkeypatch):
    """The in-process side stays offline (conftest); only the subprocesses talk to the loopback Hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
