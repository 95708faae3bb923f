"""Issue #14's route in a real browser: an uncalibrated JPEG given 0.39 nm/px -> the steel model segments it (sizes in
nm, edge particles flagged) -> a label started from its prediction and corrected with the brush -> a fine-tune
cancelled and resumed (its times count both attempts) -> two strategies compared from the pretrained base (real F1
values) -> the export bundle named after the image. A reload (F5) on the way keeps the image and the model.

Its own server (a fresh TEMZOO_HOME). Budgets are tiny (a 3-epoch fine-tune, 1-epoch comparison runs on one 512 px
image at the model's 0.39 nm/px, so nothing is resampled). Screenshots go to test-artifacts/route-*.png.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.util import (choose, compare_two_strategies, nav, start_app_server, start_finetune, stop_app_server,
                        wait_for_app)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEEL = "labeled/steel-dislocation-loops/images/14.png"  # a held-out test image of the steel model, 512x512
STEM = "steel-loops-14"


def _metric(page, label: str) -> str:
    """The value of the st.metric labelled ``label`` (its label is the first line)."""
    m = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return m.locator('[data-testid="stMetricValue"]').inner_text().strip()


def _seconds(text: str) -> int:
    """"1 min 05 s" / "42 s" (ui.training_form.fmt_seconds) -> seconds."""
    m = re.fullmatch(r"(?:(\d+) min )?(\d+) s", text.strip())
    assert m, text
    return int(m.group(1) or 0) * 60 + int(m.group(2))


def _labelled_percent(page) -> float:
    text = page.get_by_text(re.compile(r"% of 512x512 pixels labelled")).first.inner_text()
    return float(re.search(r"([\d.]+) % of 512x512", text).group(1))


def _stroke(page, row: float) -> None:
    """One brush stroke across the canvas at ``row`` (0..1 of its height)."""
    canvas = page.locator("canvas").last
    canvas.wait_for()
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(700)
    box = canvas.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + w * 0.15, y0 + h * row)
    page.mouse.down()
    for s in range(1, 13):
        page.mouse.move(x0 + w * (0.15 + 0.05 * s), y0 + h * (row + 0.005 * s))
    page.mouse.up()
    wait_for_app(page)


def _label_from_prediction(page, name: str, row: float, expect: float | None = None) -> float:
    """Start from the model's prediction, correct it with one brush stroke, save as ``name``; returns the starting
    mask's labelled percentage (``expect``: what it must be, the prediction's, known from an earlier label)."""
    box = page.get_by_label("Name")
    box.fill(name)
    box.press("Enter")  # reruns the page: after a save, a fresh canvas from the prediction again
    page.get_by_text(re.compile(r"^Saved ")).first.wait_for(state="hidden", timeout=60_000)  # that rerun is done
    wait_for_app(page)
    choose(page, "Start from", "Current model's prediction")
    page.get_by_text("Prediction threshold").first.wait_for(timeout=120_000)
    last = None
    for _ in range(240):  # the prediction (the Segment page's, cached) becomes the starting mask: wait until the
        wait_for_app(page)  # caption is the expected value, or non-zero and steady (a rerun may be on its way)
        page.wait_for_timeout(500)
        now = _labelled_percent(page)
        if (now == expect) if expect is not None else (now > 0 and now == last):
            break
        last = now
    start = _labelled_percent(page)
    assert 0 < start < 60, start  # the prediction, not an empty or a full mask
    _stroke(page, row)
    for _ in range(40):  # the canvas reports its strokes a moment later
        if _labelled_percent(page) > start:
            break
        page.wait_for_timeout(250)
    assert _labelled_percent(page) > start  # the brush added to the prediction
    page.get_by_role("button", name="Add to labelled set").click()
    wait_for_app(page)
    page.get_by_text(f"Saved {name} (").first.wait_for(timeout=30_000)
    return start


def test_issue14_route_in_the_browser(browser, shared_data, tmp_path, artifacts):
    from PIL import Image

    from temzoo.train import labelset

    jpeg = tmp_path / f"{STEM}.jpg"  # a real micrograph as a lab hands it over: JPEG, no pixel size in it
    Image.open(shared_data / STEEL).convert("L").save(jpeg, quality=95)
    home = tmp_path / "home"
    server = start_app_server(home)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1500})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    n = 0
    t0 = time.time()

    def shot(name: str) -> None:
        nonlocal n
        n += 1
        wait_for_app(page)
        page.screenshot(path=str(artifacts / f"route-{n}-{name}.png"), full_page=True)
        assert page.locator('[data-testid="stException"]').count() == 0, name

    try:
        # 1. load the uncalibrated JPEG and give it 0.39 nm/px
        page.goto(server.url)
        wait_for_app(page)
        page.locator('input[type="file"]').set_input_files(str(jpeg))
        px = page.get_by_label("Pixel size (nm/px), not in this file: 0 = unknown", exact=True)
        px.fill("0.39")
        px.press("Enter")
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("0.39 nm/px").first.wait_for()
        nav(page, "Zoo")
        card = page.locator("[class*='st-key-zoo_model_']").filter(has_text="steel-dislocation-loops").first
        card.get_by_role("button", name="Use this model").click()
        wait_for_app(page)
        sidebar.get_by_text("steel-dislocation-loops").first.wait_for()
        # a reload (F5) keeps the image, its given pixel size and the model
        page.reload()
        wait_for_app(page)
        sidebar.get_by_text("(512x512, 0.39 nm/px)").first.wait_for()
        sidebar.get_by_text("Model: steel-dislocation-loops").first.wait_for()
        shot("loaded")

        # 2. segment: sizes in nm, edge particles flagged (and left out of the sizes)
        nav(page, "Segment")
        page.locator('[data-testid="stMetric"]', has_text="Median diameter").first.wait_for(timeout=180_000)
        assert _metric(page, "Median diameter").endswith(" nm")
        assert int(_metric(page, "Cut by the edge")) >= 1
        page.get_by_text("Particles (nm); touches_edge: cut by the field of view.").first.wait_for()
        assert page.get_by_text("- nm/px").count() == 0
        shot("segment")

        # 3. labels started from the prediction, corrected with the brush (two: Compare needs a validation image)
        nav(page, "Label")
        start = _label_from_prediction(page, STEM, 0.3)
        assert _label_from_prediction(page, f"{STEM}-b", 0.6, expect=start) == start  # a fresh start after a save
        shot("labelled")
        [labels] = (home / "sessions").glob("*/labels")
        pairs = labelset.list_pairs(labels)
        assert sorted(p.name for p in pairs) == [STEM, f"{STEM}-b"]
        assert all(p.pixel_size_nm == pytest.approx(0.39) for p in pairs)  # the given pixel size goes with them

        # 4. fine-tune from the steel model; cancel after the first epoch, resume: the times count both attempts
        nav(page, "Fine-tune")
        page.get_by_text("2 labelled images · pixel size 0.39 nm").first.wait_for()
        start_finetune(page, "steel-dislocation-loops (bundled)", 3, "steel-tuned")  # ~10 s an epoch: time to cancel
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=180_000)  # the first epoch is in
        page.get_by_role("button", name="Cancel").click()
        page.locator('[data-testid="stMetric"]').filter(has_text="cancelled").first.wait_for(timeout=120_000)
        first = _seconds(_metric(page, "Ran for"))
        assert first > 0
        shot("cancelled")
        page.get_by_role("button", name="Resume").click()
        wait_for_app(page)
        page.get_by_text("Saved to your zoo").first.wait_for(timeout=240_000)
        total = _seconds(_metric(page, "Ran for"))
        page.get_by_text(re.compile(r"2 attempts, .* in all")).first.wait_for()
        [status] = [json.loads(p.read_text()) for p in (home / "sessions").glob("*/jobs/*/status.json")]
        assert status["attempts"] == 2 and status["prior_seconds"] >= first - 1
        ran = status["prior_seconds"] + status["finished"] - status["started"]
        assert abs(total - ran) <= 1 and total > first  # "ran for" = both attempts
        epochs = [json.loads(x)["epoch"] for x in next((home / "sessions").glob("*/jobs/*/metrics.jsonl"))
                  .read_text().splitlines()]
        assert epochs == [1, 2, 3]  # resumed after the epoch it had finished: none lost, none repeated
        shot("resumed")

        # 5. compare two strategies from the pretrained base, 1 epoch each: real F1 values
        nav(page, "Compare")
        compare_two_strategies(page, "steel-dislocation-loops (bundled)")
        line = page.get_by_text("Best validation F1:").first.inner_text()
        f1 = {m.group(1): float(m.group(2)) for m in re.finditer(r"([a-z-]+) \(1 img\) ([\d.]+)", line)}
        assert set(f1) == {"full", "freeze-encoder"} and all(0.2 < v <= 1 for v in f1.values()), line
        zoo = home / "zoo"
        assert sorted(p.name for p in zoo.iterdir()) == ["steel-tuned"]  # the runs stay in the comparison's folder
        shot("compared")

        # 6. the export bundle, every file named after the image
        nav(page, "Segment")
        page.get_by_role("button", name=f"{STEM}_overlay.png").wait_for(timeout=180_000)
        names = {t.strip() for t in page.locator('[data-testid="stDownloadButton"]').all_inner_texts()}
        suffixes = ("_mask.png", "_mask.tif", "_probability.tif", "_confidence.tif", "_particles.csv",
                    "_overlay.png", ".hspy", "_summary.json")
        assert names == {f"{STEM}{s}" for s in suffixes}, names
        shot("export")
    except BaseException:
        page.screenshot(path=str(artifacts / "route-failure.png"), full_page=True)
        raise
    finally:
        ctx.close()
        log = stop_app_server(server)
    assert "Traceback" not in log, log[-3000:]
    print(f"route: {time.time() - t0:.0f} s")
