"""Zoo page with AppTest: offline listing, badges, filters, "use this model"; online Hub listing + download."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.hub_server import LoopbackHub, Repo
from ui import state

REPO = Path(__file__).resolve().parent.parent
PAGE = str(REPO / "pages" / "zoo.py")


@pytest.fixture()
def zoo(tmp_path, tiny_checkpoint, monkeypatch):
    import yaml

    bundled = tmp_path / "bundled"
    shutil.copytree(tiny_checkpoint, bundled / "base")
    shutil.copytree(tiny_checkpoint, Path(os.environ["TEMZOO_HOME"]) / "zoo" / "my-finetune")
    reg = tmp_path / "registry.yaml"
    reg.write_text(yaml.safe_dump({"bundled_dir": str(bundled), "entries": [
        {"id": "base", "bundled": "base", "task": "segmentation", "pixel_size_nm": 0.05,
         "description": "HRTEM base for tests", "tags": ["hrtem", "base"]},
        {"id": "planned", "bundled": "planned", "task": "denoising", "description": "not trained yet"},
    ]}))
    monkeypatch.setenv("TEMZOO_REGISTRY", str(reg))
    return tmp_path


def _texts(at, kind: str) -> list[str]:
    return [str(e.value) for e in at.get(kind)]


def test_zoo_page_offline_lists_badges_filters_and_sets_the_model(zoo):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    md = _texts(at, "markdown")
    assert "#### base" in md and "#### my-finetune" in md and "#### planned" not in md
    assert ":blue-badge[bundled]" in md and ":green-badge[your zoo]" in md
    assert any("default base" in m for m in md)
    assert len(at.info) == 1 and "Offline" in at.info[0].value  # said once, calmly
    assert not at.error and not at.warning
    # The card renders (body only, no YAML header).
    assert any("## Intended use" in m and "library_name" not in m for m in md)

    at.selectbox(key="zoo_task").set_value("denoising").run()
    assert "#### base" not in _texts(at, "markdown") and "match these filters" in at.info[-1].value
    at.selectbox(key="zoo_task").set_value("any").run()
    at.multiselect(key="zoo_tags").set_value(["hrtem"]).run()
    md = _texts(at, "markdown")
    assert "#### base" in md and "#### my-finetune" not in md
    at.multiselect(key="zoo_tags").set_value([]).run()
    at.number_input(key="zoo_px").set_value(0.5).run()  # 10x coarser than the models: filtered out
    assert "#### base" not in _texts(at, "markdown")
    at.number_input(key="zoo_px").set_value(0.07).run()
    assert "#### base" in _texts(at, "markdown")

    at.button(key="zoo_use_0").click().run()
    assert at.session_state[state.MODEL_ID] == "base"
    assert any("current model" in m for m in _texts(at, "markdown"))
    assert "Current model: **base**" in at.success[0].value


def test_zoo_page_shows_a_broken_registry_as_an_error(tmp_path, monkeypatch):
    bad = tmp_path / "r.yaml"
    bad.write_text("entries: [{id: x, task: nope}]")
    monkeypatch.setenv("TEMZOO_REGISTRY", str(bad))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and "task" in at.error[0].value


ONLINE = """
import json, sys
from temzoo.zoo.network import configure
configure()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
out = {"md": [str(e.value) for e in at.markdown], "info": [e.value for e in at.info],
       "buttons": [e.label for e in at.button], "exc": [str(e) for e in at.exception]}
next(b for b in at.button if b.label == "Download and use").click().run()
out["model"] = at.session_state["tz_model_id"]
out["md_after"] = [str(e.value) for e in at.markdown]
out["err"] = [e.value for e in at.error]
print("RESULT" + json.dumps(out))
"""


def test_zoo_page_online_lists_hub_models_and_downloads_on_demand(zoo, tiny_checkpoint, tmp_path):
    """A subprocess (the Hub client reads HF_ENDPOINT at import) runs the page against the loopback Hub."""
    with LoopbackHub("hf_unused") as hub:
        files = {p.name: p.read_bytes() for p in tiny_checkpoint.iterdir()}
        hub.state.repos["lab/hub-model"] = Repo("lab/hub-model", files=files, sha="a" * 40,
                                                tags=["segmentation-models-pytorch", "temzoo", "hrtem"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"),
                   TEMZOO_REGISTRY=str(tmp_path / "empty.yaml"))
        (tmp_path / "empty.yaml").write_text("entries: []\n")
        out = subprocess.run([sys.executable, "-c", ONLINE, PAGE], env=env, cwd=REPO, capture_output=True,
                             text=True, timeout=180)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, out.stdout[-2000:] + out.stderr[-2000:]
    res = json.loads(line[len("RESULT"):])
    assert not res["exc"] and not res["err"], res
    assert not any("Offline" in i for i in res["info"])
    assert "#### lab/hub-model" in res["md"] and ":orange-badge[Hub]" in res["md"]
    assert "Download and use" in res["buttons"]
    assert res["model"] == "lab/hub-model"
    assert ":violet-badge[HF cache]" in res["md_after"]  # downloaded into the cache, now listed from there
    assert any("## Intended use" in m for m in res["md_after"])
