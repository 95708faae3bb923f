"""End to end in a real browser: upload a DM4 -> pick a zoo model -> segment with confidence and importance -> draw a
label -> fine-tune a short job -> compare -> save to the local zoo -> push to the loopback Hub.

The app server here is our own (not conftest's ``app_server``): it needs HF_ENDPOINT pointing at the loopback Hub,
HF_HUB_OFFLINE=0 and a fake HF_TOKEN, and its own TEMZOO_HOME with a zoo model in it. Screenshots of every step go
to test-artifacts/e2e-*.png. At the end the token is searched for in every file the server wrote and in each page's
HTML.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.hub_server import LoopbackHub
from tests.test_fuzz_readers import _record
from tests.util import (choose, compare_two_strategies, nav, start_app_server, start_finetune, stop_app_server,
                        wait_for_app)

# ------------------------------------------------------------------------------------------------------- the flow

pytestmark = pytest.mark.browser

TOKEN = "hf_E2eFlowSecret_0123456789abcdef"
JEOL = "dm/particlespy/JEOL HAADF Image.dm4"


class _Steps:
    """Screenshots (test-artifacts/e2e-N-name.png) and the page HTML of every step, for the token search."""

    def __init__(self, page, artifacts: Path) -> None:
        self.page, self.artifacts, self.n, self.html = page, artifacts, 0, []

    def shot(self, name: str) -> None:
        self.n += 1
        wait_for_app(self.page)
        self.page.wait_for_timeout(400)
        self.page.screenshot(path=str(self.artifacts / f"e2e-{self.n}-{name}.png"), full_page=True)
        self.html.append(self.page.content())
        assert self.page.locator('[data-testid="stException"]').count() == 0, name


def test_whole_flow_in_the_browser(browser, shared_data, tiny_checkpoint, tmp_path, artifacts):
    home = tmp_path / "home"
    base = home / "zoo" / "e2e-base"
    shutil.copytree(tiny_checkpoint, base)
    meta = json.loads((base / "temzoo.json").read_text())
    meta["pixel_size_nm"] = 1.25  # the JEOL DM4's own pixel size: the flow needs no resampling on 2 CPU cores
    (base / "temzoo.json").write_text(json.dumps(meta))
    base_hash = hashlib.sha256((base / "model.safetensors").read_bytes()).hexdigest()
    hf_home = tmp_path / "hf"
    t0 = time.time()
    with LoopbackHub(TOKEN) as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(hf_home), HF_TOKEN=TOKEN,
                   HF_HUB_DISABLE_TELEMETRY="1")
        server = start_app_server(home, env)
        ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        steps = _Steps(page, artifacts)
        try:
            # 1. upload a DM4
            page.goto(server.url)
            wait_for_app(page)
            page.locator('input[type="file"]').set_input_files(str(shared_data / JEOL))
            page.get_by_text("1.25 nm/px").first.wait_for(timeout=60_000)
            steps.shot("load-dm4")

            # 2. pick a zoo model
            nav(page, "Zoo")
            card = page.locator("[class*='st-key-zoo_model_']").filter(has_text="e2e-base").first
            card.get_by_role("button", name="Use this model").click()
            wait_for_app(page)
            page.get_by_text("Current model: e2e-base").first.wait_for()
            steps.shot("zoo-pick")

            # 3. segment with confidence (TTA spread) and importance (Grad-CAM)
            nav(page, "Segment")
            page.locator('[data-testid="stMetric"]', has_text="Mean confidence").first.wait_for(timeout=120_000)
            page.get_by_text("TTA (x8 flips)").first.click()
            wait_for_app(page)
            page.get_by_text("tta_spread").first.wait_for(timeout=120_000)  # the extra uncertainty map
            choose(page, "Method", "gradcam")
            page.get_by_role("button", name="Explain").click()
            wait_for_app(page)
            page.get_by_text("gradcam:").first.wait_for(timeout=120_000)
            steps.shot("segment-confidence-importance")

            # 4. draw labels on the canvas with the mouse (two, so that Compare has a validation image)
            nav(page, "Label")
            for n, (label, rows) in enumerate((("jeol-e2e", (0.3, 0.5, 0.7)), ("jeol-e2e-2", (0.4, 0.6)))):
                name = page.get_by_label("Name")
                name.fill(label)
                name.press("Enter")  # also reruns the page, which brings a fresh canvas after a save
                wait_for_app(page)
                canvas = page.locator("canvas").last
                canvas.wait_for()
                page.wait_for_timeout(700)
                box = canvas.bounding_box()
                x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
                for row in rows:  # brush strokes across the particles
                    page.mouse.move(x0 + w * 0.2, y0 + h * row)
                    page.mouse.down()
                    for s in range(1, 11):
                        page.mouse.move(x0 + w * (0.2 + 0.06 * s), y0 + h * (row + 0.01 * s))
                    page.mouse.up()
                    page.wait_for_timeout(200)
                wait_for_app(page)
                page.get_by_text("% of 112x112 pixels labelled").first.wait_for()
                page.get_by_role("button", name="Add to labelled set").click()
                wait_for_app(page)
                page.get_by_text(f"Saved {label} ({n + 1} labelled images").first.wait_for(timeout=30_000)
                if n == 0:
                    steps.shot("label-drawn")

            # 5. fine-tune a short job from the zoo model
            nav(page, "Fine-tune")
            page.get_by_text("2 labelled images ·").first.wait_for()
            start_finetune(page, "e2e-base (local)", 1, "e2e-tuned")
            page.get_by_text("Saved to your zoo").first.wait_for(timeout=180_000)
            steps.shot("finetune-done")

            # 6. compare two strategies on the same validation image
            nav(page, "Compare")
            compare_two_strategies(page, "e2e-base (local)", 240_000)
            steps.shot("compare")

            # 7. the fine-tuned model is saved in the local zoo
            nav(page, "Zoo")
            tuned = page.locator("[class*='st-key-zoo_model_']").filter(has_text="e2e-tuned").first
            tuned.wait_for()
            assert "your zoo" in tuned.inner_text()
            tuned.scroll_into_view_if_needed()  # the page scrolls inside its own container
            steps.shot("local-zoo")

            # 8. push it to the (loopback) Hub from the Share page
            nav(page, "Share")
            choose(page, "Checkpoint", "e2e-tuned")
            repo = page.get_by_label("Repository (org/name)")
            repo.fill("lab/e2e-tuned")  # (no Enter: in a form, Enter submits it)
            # the commit message names the checkpoint picked (not the first one listed)
            msg = page.get_by_label("Commit message")
            for _ in range(40):  # the rerun after picking may still be on its way
                if msg.input_value() == "Upload e2e-tuned with temzoo":
                    break
                page.wait_for_timeout(250)
            assert msg.input_value() == "Upload e2e-tuned with temzoo"
            page.get_by_role("button", name="Push").click()
            page.get_by_text("Pushed:").first.wait_for(timeout=120_000)
            steps.shot("pushed")
            # pushing again (an update of the same repo) is a second commit, not an error
            page.get_by_role("button", name="Push").click()
            commits: list[str] = []
            for _ in range(240):
                commits = [r for r in hub.requests if r.startswith("POST /api/models/lab/e2e-tuned/commit/")]
                if len(commits) == 2:
                    break
                page.wait_for_timeout(250)
            assert len(commits) == 2, commits
            wait_for_app(page)
            page.get_by_text("Pushed:").first.wait_for(timeout=60_000)
            assert page.locator('[data-testid="stException"]').count() == 0
        except BaseException:
            page.screenshot(path=str(artifacts / "e2e-failure.png"), full_page=True)
            raise
        finally:
            ctx.close()
            log = stop_app_server(server)
        pushed = dict(hub.state.repos["lab/e2e-tuned"].files)
    seconds = time.time() - t0
    assert sorted(pushed) == ["README.md", "config.json", "model.safetensors", "temzoo.json"]
    assert (home / "zoo" / "e2e-tuned" / "model.safetensors").read_bytes() == pushed["model.safetensors"]
    assert "base_model" in pushed["README.md"].decode() or "e2e-base" in pushed["README.md"].decode()
    # the shared base was never trained in place, and nothing anywhere holds the token
    assert hashlib.sha256((base / "model.safetensors").read_bytes()).hexdigest() == base_hash
    assert "Traceback" not in log, log[-3000:]
    assert TOKEN not in log and all(TOKEN not in html for html in steps.html)
    assert all(TOKEN.encode() not in data for data in pushed.values())
    leaks = [str(p) for root in (home, hf_home) for p in root.rglob("*")
             if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert not leaks, leaks
    _record("e2e_flow", steps=steps.n, seconds=round(seconds), screenshots=steps.n, token_leaks=0,
            pushed_files=sorted(pushed))
