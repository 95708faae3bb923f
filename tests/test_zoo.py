"""Registry, sources and their precedence, --model resolution, offline detection and ``zoo list``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from temzoo.errors import ModelError
from temzoo.paths import bundled_zoo_dir
from temzoo.zoo import registry as reg
from temzoo.zoo.sources import list_models, load_model, resolve

REPO = Path(__file__).resolve().parent.parent


def _write_registry(path: Path, entries: list[dict], bundled_dir: Path | None = None) -> Path:
    import yaml

    doc = {"entries": entries}
    if bundled_dir is not None:
        doc["bundled_dir"] = str(bundled_dir)
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture()
def zoo(tmp_path, tiny_checkpoint, monkeypatch):
    """A registry of three entries: 'base' bundled, 'task' only in the local zoo, 'planned' nowhere."""
    bundled = tmp_path / "bundled"
    shutil.copytree(tiny_checkpoint, bundled / "base")
    local = Path(os.environ["TEMZOO_HOME"]) / "zoo"
    shutil.copytree(tiny_checkpoint, local / "task")
    shutil.copytree(tiny_checkpoint, local / "my-finetune")
    (local / "not-a-checkpoint").mkdir()
    path = _write_registry(tmp_path / "registry.yaml", [
        {"id": "base", "bundled": "base", "hub_repo": "lab/base", "revision": "main", "task": "segmentation",
         "description": "the base", "tags": ["hrtem"], "pixel_size_nm": 0.05},
        {"id": "task", "bundled": "task", "task": "segmentation", "description": "a task model"},
        {"id": "planned", "bundled": "planned", "hub_repo": "lab/planned", "task": "denoising"},
    ], bundled_dir=bundled)
    monkeypatch.setenv("TEMZOO_REGISTRY", str(path))
    return {"bundled": bundled, "local": local, "registry": path}


def test_packaged_registry_lists_the_planned_zoo_default_base_first():
    entries = reg.load_registry(reg.REGISTRY_FILE)
    ids = [e.id for e in entries]
    assert ids[:4] == ["hrtem-nanoparticle", "tem-denoise", "uo2-grain-boundaries", "steel-dislocation-loops"]
    assert reg.default_base(reg.REGISTRY_FILE) == "hrtem-nanoparticle"
    first = entries[0]
    assert first.task == "segmentation" and first.pixel_size_nm == 0.05 and first.hub_repo
    assert entries[1].task == "denoising"
    assert all(e.description and e.tags for e in entries)


@pytest.mark.parametrize("text,match", [
    ("entries: [{id: a}, {id: a}]", "more than once"),
    ("entries: [{id: a, task: classify}]", "task"),
    ("entries: [{id: A B}]", "lowercase"),
    ("entries: [{id: a, hub_repo: nope}]", "org/name"),
    ("entries: [{id: a, bundled: ../x}]", "folder name"),
    ("nothing: here", "entries"),
    ("entries: [", "not valid YAML"),
])
def test_malformed_registry_is_a_one_line_model_error(tmp_path, text, match):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    with pytest.raises(ModelError, match=match):
        reg.load_registry(p)


def test_sources_precedence_and_availability(zoo):
    models = {m.id: m for m in list_models(hub=False)}
    assert list(models) == ["base", "task", "my-finetune"]  # registry order first; 'planned' is nowhere yet
    assert models["base"].source == "bundled" and models["base"].default_base
    assert models["task"].source == "local" and models["task"].registered
    assert models["my-finetune"].source == "local" and not models["my-finetune"].registered
    rec = models["base"].to_json()
    assert list(rec) == ["id", "source", "path", "pixel_size_nm", "classes", "params", "description"]
    assert rec["pixel_size_nm"] == 0.05 and rec["classes"] == ["background", "foreground"]
    assert rec["params"] == 877_841 and rec["description"] == "the base"
    # Bundled beats local for the same id; with the bundled folder gone the local copy takes over.
    shutil.copytree(zoo["bundled"] / "base", zoo["local"] / "base")
    assert resolve("base")[0] == zoo["bundled"] / "base"
    shutil.rmtree(zoo["bundled"] / "base")
    again = {m.id: m for m in list_models(hub=False)}
    assert again["base"].source == "local" and again["base"].path == zoo["local"] / "base"


def test_load_model_by_id_folder_and_local_name(zoo, tiny_checkpoint):
    import torch

    x = torch.randn(1, 1, 64, 64)
    ref = load_model(str(tiny_checkpoint)).model(x)
    for name in ("base", "task", "my-finetune"):
        ckpt = load_model(name)
        assert ckpt.model_id == name
        assert torch.equal(ckpt.model(x), ref)


@pytest.mark.parametrize("ref,match", [
    ("planned", "not bundled"),  # registered, on no source, Hub offline in tests
    ("nonsense", "unknown model"),
    ("./missing/folder", "unknown model"),
    ("org/na me", "not a valid Hub repo id"),
    ("org/x", "Hub is unreachable"),
    ("", "no model given"),
])
def test_bad_references_are_one_line_errors(zoo, ref, match):
    with pytest.raises(ModelError, match=match) as err:
        load_model(ref)
    assert "\n" not in str(err.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probe_and_configure_decide_offline_before_the_hub_client_is_imported(tmp_path):
    from temzoo.zoo import network

    t = time.perf_counter()
    assert network.probe(f"http://127.0.0.1:{_closed_port()}") is False
    assert time.perf_counter() - t < 1.5
    code = ("import os, sys; from temzoo.zoo.network import configure; on = configure(); "
            "import huggingface_hub.constants as c; print(on, os.environ.get('HF_HUB_OFFLINE'), c.HF_HUB_OFFLINE)")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "1", "True"], out.stderr
    # An explicit HF_HUB_OFFLINE=1 is respected without probing.
    env.update(HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "1", "True"], out.stderr


def test_zoo_list_cli_offline_is_fast_and_follows_the_contract(zoo):
    # No HF_HUB_OFFLINE: the CLI must find out itself, from a dead endpoint (a blackholed address: the ~1 s probe).
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = "http://10.255.255.1"
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "temzoo", "zoo", "list", "--json"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - t
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["id"] for r in rows] == ["base", "task", "my-finetune"]
    assert [r["source"] for r in rows] == ["bundled", "local", "local"]
    assert all(set(r) == {"id", "source", "path", "pixel_size_nm", "classes", "params", "description"} for r in rows)
    # Sanity only (the Hub client alone would retry ~23 s per miss); the real timing lives in bench/.
    assert seconds < 15, f"offline zoo list took {seconds:.1f} s"
    table = subprocess.run([sys.executable, "-m", "temzoo", "zoo", "list"], env=dict(env, HF_HUB_OFFLINE="1"),
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "base" in table.stdout and "bundled" in table.stdout and "0.88M" in table.stdout


def test_cli_errors_are_one_line(zoo, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    bad = _write_registry(tmp_path / "bad.yaml", [{"id": "x", "task": "nope"}])
    for args, extra in ((["zoo", "list"], {"TEMZOO_REGISTRY": str(bad)}),
                        (["push", str(tmp_path), "--repo", "not a repo"], {}),
                        (["push", str(tmp_path), "--repo", "lab/x"], {"HF_TOKEN": ""})):
        out = subprocess.run([sys.executable, "-m", "temzoo", *args], env={**env, **extra}, cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr


def test_bundled_cards_are_mirrored_in_model_cards():
    """Every bundled checkpoint carries a card, and model_cards/<id>.md is a copy of it."""
    checked = 0
    for e in reg.load_registry(reg.REGISTRY_FILE):
        folder = (e.bundled_dir or bundled_zoo_dir()) / (e.bundled or "")
        if not (e.bundled and (folder / "config.json").is_file()):
            continue  # not shipped yet
        card = (folder / "README.md").read_text()
        assert (REPO / "model_cards" / f"{e.id}.md").read_text() == card, "run: python -m temzoo.zoo.cards"
        checked += 1
    if not checked:
        pytest.skip("no bundled checkpoint in temzoo/zoo/bundled/ yet")


def test_recommended_base_follows_the_pretraining_study():
    """The default base for images at its scale (HRTEM), scratch for bright-field sets far from it or uncalibrated."""
    assert reg.recommended_base(0.05) == reg.recommended_base(0.12) == "hrtem-nanoparticle"
    assert reg.recommended_base(0.39) == "scratch"  # steel dislocation loops: no bundled base beat scratch
    assert reg.recommended_base(None) == "scratch"  # uncalibrated (UO2 grain boundaries)
