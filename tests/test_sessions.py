"""Several users at once: four browser sessions (Playwright contexts) on one real server load different images,
segment them with the same zoo model, label them and queue fine-tuning jobs. Sessions never see or overwrite each
other's images, labels or jobs, and the model shared through ``st.cache_resource`` is never trained in place (its file
hash and its predictions in a fresh session are unchanged after all four jobs ran).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.labelled_sets import disk_image
from tests.test_fuzz_readers import _record
from tests.util import budget_epochs, choose, nav, start_app_server, stop_app_server, wait_for_app

pytestmark = pytest.mark.browser

SIZES = (64, 72, 80, 88)  # one image size per session, so each page shows whose image it has


def save_label(page, expect: str) -> None:
    """Click "Add to labelled set" once the canvas component has loaded (its first report reruns the page, which
    can swallow a click made during it); click again only if that happened."""
    page.locator("canvas").first.wait_for()  # a components-v2 element in the page (no iframe)
    wait_for_app(page)
    page.wait_for_timeout(700)
    for attempt in range(2):
        page.get_by_role("button", name="Add to labelled set").click()
        wait_for_app(page)
        try:
            page.get_by_text(expect).first.wait_for(timeout=15_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; retried once
            if attempt:
                raise


def _wait_jobs_done(sessions: Path, n: int, timeout: float) -> None:
    import time

    deadline = time.time() + timeout
    states: list[str] = []
    while time.time() < deadline:
        states = [json.loads(p.read_text()).get("state") for p in sessions.glob("*/jobs/*/status.json")]
        if len(states) == n and all(s in ("done", "failed", "cancelled", "interrupted") for s in states):
            break
        time.sleep(1)
    assert states == ["done"] * n, states


def _widget_text(locator) -> str:
    """Visible text plus input values (a selectbox shows its choice in an <input>)."""
    return locator.evaluate("e => e.innerText + ' ' + [...e.querySelectorAll('input')].map(i => i.value).join(' ')")


def _segment_summary(page, model: str) -> dict:
    """Segment the current image with ``model`` (typed as a folder) and return the page's summary.json download."""
    nav(page, "Segment")
    box = page.get_by_label("... or a checkpoint folder / Hub repo id")
    box.wait_for(state="attached")
    if not box.is_visible():
        page.locator('[data-testid="stExpander"] summary', has_text="Model").first.click()
    box.fill(model)
    box.press("Enter")
    wait_for_app(page)
    # The page may first have segmented with the zoo's default model; take the download once it is the typed one.
    for _ in range(20):
        page.locator('[data-testid="stMetric"]', has_text="Mean confidence").first.wait_for(timeout=120_000)
        wait_for_app(page)
        with page.expect_download(timeout=60_000) as dl:
            page.locator('[data-testid="stDownloadButton"]', has_text="summary.json").first.click()
        summary = json.loads(Path(dl.value.path()).read_text())
        if summary["model"] == model:
            return summary
        page.wait_for_timeout(500)
    raise AssertionError(f"the Segment page kept using {summary['model']!r}, not {model!r}")


def test_four_sessions_stay_apart_and_the_shared_model_is_never_trained(browser, tmp_path, tiny_checkpoint,
                                                                           artifacts):
    home = tmp_path / "home"
    model = home / "zoo" / "shared-model"
    shutil.copytree(tiny_checkpoint, model)
    weights_hash = hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
    files = []
    for i, size in enumerate(SIZES):
        img, _ = disk_image(size, seed=10 + i)
        f = tmp_path / f"session{i}.png"
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(f)
        files.append(f)

    server = start_app_server(home)
    contexts, pages = [], []
    try:
        for i in range(4):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            pg = ctx.new_page()
            pg.set_default_timeout(60_000)
            contexts.append(ctx)
            pages.append(pg)
        # 1. each session loads its own image
        for i, pg in enumerate(pages):
            pg.goto(server.url)
            wait_for_app(pg)
            pg.locator('input[type="file"]').set_input_files(str(files[i]))
        for i, pg in enumerate(pages):
            pg.get_by_text(f"{SIZES[i]} x {SIZES[i]} px").first.wait_for(timeout=60_000)
            pg.locator('[data-testid="stSidebar"]', has_text=f"session{i}").wait_for()
        # 2. each segments it with the same model (one object in the shared st.cache_resource)
        before = [_segment_summary(pg, str(model)) for pg in pages]
        assert [tuple(s["shape"]) for s in before] == [(n, n) for n in SIZES]  # each predicted its own image
        # 3. each draws a label (threshold start) into its own labelled set
        for i, pg in enumerate(pages):
            nav(pg, "Label")
            choose(pg, "Start from", "Threshold: bright features")
            name = pg.get_by_label("Name")
            name.fill(f"label-s{i}")
            name.press("Enter")
            wait_for_app(pg)
            save_label(pg, f"Saved label-s{i} (1 labelled images in this session)")
        # 4. each queues a fine-tuning job from the shared model; the queue runs them one at a time
        for i, pg in enumerate(pages):
            nav(pg, "Fine-tune")
            pg.get_by_text("1 labelled images ·").first.wait_for()  # the set picker's caption: its own one label
            choose(pg, "Start from", "shared-model (local)")
            budget_epochs(pg, 1)
            name = pg.get_by_label("Name of the result in your zoo")
            name.fill(f"job-s{i}")
            name.press("Enter")
            wait_for_app(pg)
            pg.get_by_role("button", name="Start fine-tuning").click()
            wait_for_app(pg)
        # 5. each session lists exactly its own job (while the shared queue works through all four)
        for i, pg in enumerate(pages):
            job_box = pg.locator('[data-testid="stSelectbox"]').filter(has_text="Job").first
            job_box.wait_for()
            assert f"job-s{i}" in _widget_text(job_box)
            job_box.click()
            options = pg.get_by_role("option").all_inner_texts()
            pg.keyboard.press("Escape")
            assert len(options) == 1 and f"job-s{i}" in options[0], options
        # 6. labels and images are still each session's own
        for i, pg in enumerate(pages):
            nav(pg, "Label")
            pg.get_by_role("tab", name="Labelled set").click()
            pg.get_by_text("1 labelled images in this session").first.wait_for()
            pg.get_by_text(f"label-s{i}", exact=True).first.wait_for()  # its thumbnail's caption
            wait_for_app(pg)
            assert all(pg.get_by_text(f"label-s{j}").count() == 0 for j in range(4) if j != i)
            assert f"session{i}" in pg.locator('[data-testid="stSidebar"]').inner_text()
        # a reload (a new Streamlit session in the same tab) comes back to the same labels and job (?session=<id>)
        pages[0].reload()
        wait_for_app(pages[0])
        assert "session=" in pages[0].url
        nav(pages[0], "Label")
        pages[0].get_by_role("tab", name="Labelled set").click()
        pages[0].get_by_text("label-s0", exact=True).first.wait_for()
        nav(pages[0], "Fine-tune")
        assert "job-s0" in _widget_text(pages[0].locator('[data-testid="stSelectbox"]').filter(has_text="Job").first)
        # all four jobs finish (read from their folders; the page shows the last one finishing)
        _wait_jobs_done(home / "sessions", 4, timeout=300)
        nav(pages[3], "Fine-tune")
        pages[3].get_by_text("Saved to your zoo").first.wait_for(timeout=60_000)
        pages[3].screenshot(path=str(artifacts / "sessions_s3_finetune.png"), full_page=True)
        # 7. the shared model was never trained in place: same file, same prediction in a brand-new session
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        contexts.append(ctx)
        fresh = ctx.new_page()
        fresh.set_default_timeout(60_000)
        fresh.goto(server.url)
        wait_for_app(fresh)
        fresh.locator('input[type="file"]').set_input_files(str(files[0]))
        fresh.get_by_text(f"{SIZES[0]} x {SIZES[0]} px").first.wait_for(timeout=60_000)
        after = _segment_summary(fresh, str(model))
        for key in ("mean_confidence", "foreground_fraction", "n_objects"):
            assert after[key] == before[0][key], (key, after[key], before[0][key])
    except BaseException:
        for i, pg in enumerate(pages):  # what each session showed when it failed
            pg.screenshot(path=str(artifacts / f"sessions_failure_s{i}.png"), full_page=True)
        raise
    finally:
        for ctx in contexts:
            ctx.close()
        log = stop_app_server(server)
    assert hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest() == weights_hash
    assert "Traceback" not in log, log[-3000:]
    # on disk: four private session folders, each with exactly its own label and job
    sessions = sorted((home / "sessions").iterdir())
    seen = []
    for d in sessions:
        labels = sorted(p.stem for p in (d / "labels" / "masks").glob("*.png")) if (d / "labels").is_dir() else []
        job_dirs = [j for j in (d / "jobs").iterdir() if j.is_dir()] if (d / "jobs").is_dir() else []
        if not labels and not job_dirs:
            continue  # the fifth, fresh session only segmented
        assert len(labels) == 1 and len(job_dirs) == 1, (d, labels, job_dirs)
        cfg = json.loads((job_dirs[0] / "config.json").read_text())
        assert cfg["images"].startswith(str(d))  # the job trains on this session's own labels
        seen.append(labels[0])
    assert sorted(seen) == [f"label-s{i}" for i in range(4)]
    results = sorted(p.name for p in (home / "zoo").iterdir())
    assert results == ["job-s0", "job-s1", "job-s2", "job-s3", "shared-model"], results
    _record("sessions", browser_sessions=5, images=4, labels=4, jobs=4, cross_session_leaks=0,
            shared_model_hash_unchanged=True, prediction_unchanged_after_jobs=True)
