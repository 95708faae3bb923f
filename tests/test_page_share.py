"""Share page with AppTest: pick a local checkpoint, edit and save its card, push guarded by token and network."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
PAGE = str(REPO / "pages" / "share.py")


def _local(tiny_checkpoint, name: str) -> Path:
    dst = Path(os.environ["TEMZOO_HOME"]) / "zoo" / name
    shutil.copytree(tiny_checkpoint, dst)
    return dst


def test_share_page_with_an_empty_local_zoo_says_what_to_do():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "no checkpoints yet" in at.info[0].value


def test_share_page_edits_the_card_and_guards_the_push(tiny_checkpoint, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(Path(os.environ["TEMZOO_HOME"]) / "hf"))  # no stored login either
    folder = _local(tiny_checkpoint, "my-finetune")
    _local(tiny_checkpoint, "other")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="share_model").options == ["my-finetune", "other"]
    card = at.text_area(key="share_card_my-finetune").value
    assert "library_name: segmentation-models-pytorch" in card and "## Intended use" in card
    # No token: a calm warning and a disabled push button (the token is never asked for on the page).
    assert "No Hugging Face token" in at.warning[0].value
    assert at.button[-1].disabled
    assert not at.text_input(key="share_repo").value

    edited = card.replace("## Limitations", "## Limitations\nOnly tested on our microscope.")
    at.text_area(key="share_card_my-finetune").set_value(edited).run()
    at.button(key="share_save").click().run()
    assert "Card saved" in at.success[0].value
    assert "Only tested on our microscope." in (folder / "README.md").read_text()
    assert any("Only tested on our microscope." in m.value for m in at.markdown)  # preview tab

    # A card whose header was destroyed is refused with a one-line error; the file keeps the last good card.
    at.text_area(key="share_card_my-finetune").set_value("# no header").run()
    at.button(key="share_save").click().run()
    assert "YAML header" in at.error[0].value
    assert "Only tested on our microscope." in (folder / "README.md").read_text()


def test_share_page_with_a_token_but_offline_explains_and_stays_disabled(tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_page_test")
    _local(tiny_checkpoint, "my-finetune")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and not at.warning
    assert "not reachable" in at.info[0].value
    assert at.button[-1].disabled
    assert all("hf_fake_token_for_page_test" not in str(e.value) for e in [*at.markdown, *at.text_area, *at.caption])


def test_share_opens_on_the_newest_model(tiny_checkpoint):
    """#14.5: the checkpoint picked first is the one written last (a fine-tune just finished), not the first name."""
    old = _local(tiny_checkpoint, "aaa-older")
    new = _local(tiny_checkpoint, "zzz-newer")
    t = (old / "model.safetensors").stat().st_mtime
    os.utime(old / "model.safetensors", (t - 3600, t - 3600))
    os.utime(new / "model.safetensors", (t, t))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="share_model").value == "zzz-newer"
    assert at.selectbox(key="share_model").options == ["zzz-newer", "aaa-older"]
