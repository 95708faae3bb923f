"""Security: pickles never load (a pickle that WOULD run code, through every entry point: it must never run), the Hub
token never reaches logs, pages, job folders or cards, uploads over the size limit are refused politely, and upload
file names are never used as paths.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from temzoo.errors import ModelError
from tests.hub_server import LoopbackHub
from tests.test_fuzz_readers import _record
from tests.trainsets import write_disc_set
from tests.util import page_file, wait_for_app
from ui import state

REPO = Path(__file__).resolve().parent.parent
TOKEN = "hf_SecurityTestToken_9f8e7d6c5b4a3210"


# --------------------------------------------------------------------------------------------- malicious pickles


class _RunsCode:
    """Unpickling this calls ``os.mkdir(marker)``: if the marker folder exists, some code path unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _evil_folder(base: Path, marker: Path, tiny_checkpoint: Path, name: str, weights: str) -> Path:
    """A checkpoint folder whose weights file is a code-running pickle under ``weights`` (config.json is real)."""
    d = base / name
    d.mkdir(parents=True)
    shutil.copy(tiny_checkpoint / "config.json", d / "config.json")
    shutil.copy(tiny_checkpoint / "temzoo.json", d / "temzoo.json")
    payload = pickle.dumps({"state_dict": _RunsCode(marker)}, protocol=2)
    if weights.endswith(".bin"):  # the torch zip format (what torch.save writes), pickle inside
        import torch

        buf = io.BytesIO()
        torch.save({"state_dict": _RunsCode(marker)}, buf)
        payload = buf.getvalue()
    (d / weights).write_bytes(payload)
    return d


@pytest.fixture()
def evil(tmp_path, tiny_checkpoint):
    marker = tmp_path / "PICKLE_RAN"
    folders = {w: _evil_folder(tmp_path / "evil", marker, tiny_checkpoint, w.replace(".", "_"), w)
               for w in ("pytorch_model.bin", "model.pt", "model.ckpt", "model.safetensors")}
    # the bait works: an unguarded loader would run it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_RunsCode(probe)))
    assert probe.is_dir(), "the bait pickle must run code when unpickled"
    yield marker, folders
    assert not marker.exists(), "a pickle was unpickled: code from a checkpoint ran"


def _cli(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ if env is None else env, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "temzoo", *args], cwd=REPO, env=e, capture_output=True, text=True,
                          timeout=240)


def test_pickles_refused_by_library_and_cli(evil, tmp_path):
    from temzoo.cli import main
    from temzoo.zoo import load_model

    marker, folders = evil
    refused = 0
    for weights, folder in folders.items():
        with pytest.raises(ModelError) as info:
            load_model(str(folder))
        msg = str(info.value)
        assert "\n" not in msg
        if weights != "model.safetensors":
            assert "pickle" in msg, msg
        refused += 1
    # a bare pickle file given as the model
    with pytest.raises(ModelError):
        load_model(str(folders["model.pt"] / "model.pt"))
    refused += 1

    img = tmp_path / "img.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(img)
    images, masks = write_disc_set(tmp_path / "set", n=2, size=64)
    # in-process CLI for each folder, then real subprocesses for predict --model and finetune --base
    for folder in folders.values():
        assert main(["predict", str(img), "--model", str(folder), "--out", str(tmp_path / "p")]) == 2
        refused += 1
    r = _cli(["predict", str(img), "--model", str(folders["pytorch_model.bin"]), "--out", str(tmp_path / "p2")])
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "pickle" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
    r = _cli(["finetune", "--images", str(images), "--masks", str(masks), "--base", str(folders["model.ckpt"]),
              "--strategy", "full", "--out", str(tmp_path / "ft"), "--epochs", "1", "--tile-size", "32",
              "--device", "cpu"])
    assert r.returncode == 2 and "pickle" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "ft").exists() and not (tmp_path / "p2").exists()
    refused += 2
    _record("security_pickles_cli", refused=refused, code_ran=False)


def test_pickle_base_in_a_background_job_fails_cleanly(evil, tmp_path):
    from temzoo.train import jobs
    from temzoo.train.config import TrainConfig

    marker, folders = evil
    images, masks = write_disc_set(tmp_path / "set", n=2, size=64)
    cfg = TrainConfig(images=str(images), masks=str(masks), base=str(folders["pytorch_model.bin"]), strategy="full",
                      epochs=1, tile_size=32, batch_size=2, device="cpu", pixel_size_nm=0.5)
    st = jobs.submit(cfg, root=tmp_path / "jobs").wait(timeout=180)
    assert st.state == "failed" and "pickle" in st.error and "\n" not in st.error, st.error


def test_pickles_refused_by_zoo_and_segment_pages(evil, tmp_path):
    """A pickle checkpoint dropped into the local zoo: the Zoo page lists/picks it without loading it, and the
    Segment page refuses it with one st.error line."""
    from temzoo import paths
    from temzoo.types import Micrograph

    marker, folders = evil
    zoo = paths.local_zoo_dir()
    zoo.mkdir(parents=True, exist_ok=True)
    evil_in_zoo = zoo / "evil-model"
    shutil.copytree(folders["pytorch_model.bin"], evil_in_zoo)
    at = AppTest.from_file(page_file("zoo"), default_timeout=60).run()
    assert not at.exception, at.exception
    at = AppTest.from_file(page_file("segment"), default_timeout=120)
    at.session_state[state.MICROGRAPH] = Micrograph(np.random.default_rng(0).random((64, 64), np.float32), 0.05)
    for ref in (str(evil_in_zoo), "evil-model", str(folders["model.safetensors"])):
        at.session_state[state.MODEL_ID] = ref
        at.run()
        assert not at.exception, at.exception
        assert len(at.error) == 1 and "\n" not in at.error[0].value, [e.value for e in at.error]
        assert not at.get("plotly_chart")


def test_hub_repo_with_only_pickle_weights_is_never_fetched(tmp_path):
    """A Hub repo offering pytorch_model.bin: only safetensors/json/md are downloaded, so there is nothing to load."""
    import torch

    from tests.hub_server import Repo

    marker = tmp_path / "PICKLE_RAN"
    buf = io.BytesIO()
    torch.save({"w": _RunsCode(marker)}, buf)
    with LoopbackHub(TOKEN) as hub:
        hub.state.repos["lab/evil"] = Repo("lab/evil", files={
            "config.json": json.dumps({"_model_class": "Unet", "encoder_name": "tu-resnet18", "in_channels": 1,
                                       "classes": 1, "encoder_depth": 3,
                                       "decoder_channels": [64, 32, 16]}).encode(),
            "pytorch_model.bin": buf.getvalue(), "README.md": b"---\ntags: [temzoo]\n---\nevil\n"})
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"), HF_TOKEN=TOKEN)
        img = tmp_path / "img.png"
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(img)
        r = _cli(["predict", str(img), "--model", "lab/evil", "--out", str(tmp_path / "p")], env)
        requests = hub.requests
    # (the client's download bar may precede it on stderr; the error itself is the one last line)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and lines[-1].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert sum(ln.startswith("error:") for ln in lines) == 1 and "safetensors" in lines[-1]
    assert not any(q.endswith("pytorch_model.bin") and q.startswith("GET /lab/evil/resolve") for q in requests)
    assert not marker.exists() and TOKEN not in r.stdout + r.stderr


# ----------------------------------------------------------------------------------------------- the Hub token


def _grep_tree(root: Path, secret: str) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file():
            try:
                if secret.encode() in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                pass
    return hits


def _app_text(at: AppTest) -> str:
    """Everything an AppTest page rendered, as protobuf text (what the browser would receive)."""
    out = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values() if isinstance(getattr(node, "children", None), dict) \
                else getattr(node, "children", []) or []:
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def test_token_never_written_logged_or_shown(tmp_path, tiny_checkpoint, monkeypatch):
    """With HF_TOKEN set: a CLI fine-tune, a background job, a push to the loopback Hub and the Share/Fine-tune/Zoo
    pages; then every file under TEMZOO_HOME, the job folder, the outputs, the pushed files and the rendered pages
    is searched for the token."""
    from temzoo import paths
    from temzoo.train import jobs
    from temzoo.train.config import TrainConfig

    home = Path(os.environ["TEMZOO_HOME"])
    images, masks = write_disc_set(tmp_path / "set", n=3, size=64)
    outputs = []
    with LoopbackHub(TOKEN) as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"), HF_TOKEN=TOKEN,
                   TEMZOO_DEBUG="")
        r = _cli(["finetune", "--images", str(images), "--masks", str(masks), "--base", "scratch", "--strategy",
                  "scratch", "--out", str(tmp_path / "ft"), "--epochs", "1", "--tile-size", "32", "--pixel-size-nm",
                  "0.5", "--device", "cpu"], env)
        outputs.append(r.stdout + r.stderr)
        assert r.returncode == 0, r.stderr[-1500:]
        r = _cli(["push", str(tmp_path / "ft"), "--repo", "lab/secure"], env)
        outputs.append(r.stdout + r.stderr)
        assert r.returncode == 0, r.stderr
        r = _cli(["push", str(tmp_path / "ft"), "--repo", "lab/../etc"], env)  # a refused request prints no token
        outputs.append(r.stdout + r.stderr)
        assert r.returncode == 2
        pushed = dict(hub.state.repos["lab/secure"].files)

    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the job inherits it, as a job started from the app would
    cfg = TrainConfig(images=str(images), masks=str(masks), base="scratch", strategy="scratch", epochs=1,
                      tile_size=32, batch_size=2, device="cpu", pixel_size_nm=0.5, steps_per_epoch=2)
    h = jobs.submit(cfg, name="secret-test")
    st = h.wait(timeout=180)
    assert st.state == "done", (st.error, jobs.read_log(h))

    pages = []
    for name in ("share", "finetune", "zoo"):
        at = AppTest.from_file(page_file(name), default_timeout=60).run()
        assert not at.exception, (name, at.exception)
        pages.append(_app_text(at))
    assert "secret-test" in pages[0]  # the Share page did render the fine-tuned checkpoint
    assert all(TOKEN not in o for o in outputs)
    assert all(TOKEN.encode() not in data for data in pushed.values())
    assert all(TOKEN not in p for p in pages)
    leaks = _grep_tree(home, TOKEN) + _grep_tree(tmp_path, TOKEN)
    assert not leaks, leaks
    n_files = sum(1 for root in (home, tmp_path) for p in root.rglob("*") if p.is_file())
    assert (paths.local_zoo_dir() / "secret-test" / "README.md").is_file()
    _record("security_token", files_searched=n_files, pages=3, outputs=len(outputs), pushed_files=len(pushed),
            leaks=0)


# -------------------------------------------------------------------------------------------- uploads: size, names


def test_upload_size_limit_is_configured_and_matches_the_reader():
    """The server limit (config.toml) is set, and large enough for the biggest frame the reader accepts."""
    import tomllib

    from temzoo.io import readers

    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    limit_mb = cfg["server"]["maxUploadSize"]
    assert 64 <= limit_mb <= 2048
    # a 4k x 4k float32 frame (64 MiB) fits; the reader's own ceiling refuses corrupt headers beyond that
    assert 4096 * 4096 * 4 <= limit_mb * 2**20
    assert readers.MAX_FRAME_PIXELS >= 4096 * 4096


@pytest.mark.browser
def test_upload_over_the_limit_is_refused_politely(tmp_path, browser, shared_data, artifacts):
    """A real server started with a 1 MB upload limit: a 2 MB SER file is refused in the browser with a message,
    nothing reaches the app, and the server keeps serving (a small file still loads)."""
    from tests.util import start_app_server, stop_app_server

    server = start_app_server(tmp_path / "home", extra_args=["--server.maxUploadSize", "1"])
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(server.url)
        wait_for_app(page)
        big = shared_data / "other-formats/ncempy/16_STOimage_1.ser"
        assert big.stat().st_size > 2**20
        page.locator('input[type="file"]').set_input_files(str(big))
        msg = page.get_by_text("File must be 1.0MB or smaller.")
        msg.first.wait_for(timeout=30_000)
        page.screenshot(path=str(artifacts / "security_upload_too_large.png"))
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stPlotlyChart"]').count() == 0  # nothing was read
        small = shared_data / "dm/rosettasciio/2D/test_STEM_image.dm3"
        page.reload()
        wait_for_app(page)
        page.locator('input[type="file"]').set_input_files(str(small))
        page.get_by_text("0.2485 nm/px").first.wait_for(timeout=60_000)
    finally:
        ctx.close()
        log = stop_app_server(server)
    assert "Traceback" not in log
    _record("security_upload_limit", limit_mb=1, file_mb=round(big.stat().st_size / 2**20, 2), refused=True,
            server_up_after=True)


UNSAFE_NAMES = ["../../etc/passwd.dm4", "..\\..\\windows\\evil.dm4", "x" * 600 + ".dm4",
                "/abs/path/scan.dm4", "$(touch pwned).dm4", ".hidden.dm4", "CON.dm4", "ünïcødé ～.dm4"]


def test_upload_names_never_become_paths(tmp_path, shared_data, monkeypatch):
    """Hostile upload names through the Load page (AppTest's real uploader) and the Label page's import: the
    micrograph's source is the sanitised base name, and no file appears outside the session folder."""
    import tempfile

    from temzoo.io import safe_filename
    from temzoo.train import labelset

    data = (shared_data / "dm/particlespy/JEOL HAADF Image.dm4").read_bytes()
    sandbox = tmp_path / "cwd"
    sandbox.mkdir()
    monkeypatch.chdir(sandbox)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    at = AppTest.from_file(page_file("load"), default_timeout=60).run()
    for name in UNSAFE_NAMES:
        at.file_uploader[0].set_value((name, data, "application/octet-stream")).run()
        assert not at.exception, (name, at.exception)
        assert not at.error, (name, [e.value for e in at.error])
        src = at.session_state[state.MICROGRAPH].source
        assert src == safe_filename(name) and "/" not in src and "\\" not in src and "\0" not in src
        assert len(src) <= 130 and not src.startswith(".")
    # A NUL byte in the name (no browser sends one; a crafted client could) is refused by Streamlit's own uploader
    # before the page sees the file: Streamlit's own one-line message (with showErrorDetails = "none" in
    # .streamlit/config.toml a browser sees only its generic notice), nothing read, and the session goes on.
    before = at.session_state[state.MICROGRAPH]
    at.file_uploader[0].set_value(("a\x00b.dm4", data, "application/octet-stream")).run()
    # (the message itself depends on showErrorDetails, which AppTest picks up from the first config it loaded)
    assert len(at.exception) == 1 and "Traceback" not in at.exception[0].message
    assert at.exception[0].message in ("Filename cannot contain null bytes.",) or "redacted" in at.exception[0].message
    assert at.session_state[state.MICROGRAPH] is before
    at = AppTest.from_file(page_file("load"), default_timeout=60).run()  # a reload (the widget died with the run)
    at.file_uploader[0].set_value(("after.dm4", data, "application/octet-stream")).run()
    assert not at.exception and at.session_state[state.MICROGRAPH].source == "after.dm4"
    assert safe_filename("a\x00b.dm4") == "a_b.dm4"  # the library's own sanitiser, for callers outside Streamlit
    # the Label page's import uses upload names only as sanitised stems inside the session's set
    img = Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    mbuf = io.BytesIO()
    Image.fromarray(((np.arange(32 * 32).reshape(32, 32) % 2) * 255).astype(np.uint8)).save(mbuf, format="PNG")
    set_dir = tmp_path / "session" / "labels"
    names = ["../../../escape.png", "..\\..\\esc2.png", "a\x00b.png", "y" * 400 + ".png"]
    added, problems = labelset.import_uploads(set_dir, {n: buf.getvalue() for n in names},
                                              {n: mbuf.getvalue() for n in names})
    assert len(added) == len(names), problems
    for p in added:
        assert set_dir in p.image.parents and set_dir in p.mask.parents
    inside = {p.resolve() for p in (tmp_path / "session").rglob("*")}
    everything = {p.resolve() for p in tmp_path.rglob("*")} - inside
    stray = [p for p in everything if p.is_file() and ("escape" in p.name or "esc2" in p.name or "passwd" in p.name)]
    assert not stray, stray
    assert not list(sandbox.iterdir()) and not list(tmpdir.iterdir())  # temporary upload folders cleaned up
    _record("security_upload_names", names_tried=len(UNSAFE_NAMES) + len(names), escaped=0)


def test_session_id_from_the_url_is_never_a_path(tmp_path):
    """?session=<id> (kept in the URL so a reload finds the session's labels and jobs) is adopted only when it is a
    16-hex-digit id of an existing session folder: traversal and unknown ids are ignored."""
    from temzoo import paths
    from tests.util import APP

    real = paths.home() / "sessions" / "0123456789abcdef"
    real.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for bad in ("../../elsewhere", str(outside), "0123456789ABCDEF", "fedcba9876543210", "0123456789abcdef/.."):
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["session"] = bad
        at.run()
        assert not at.exception, at.exception
        adopted = at.session_state[state.SESSION_DIR] if state.SESSION_DIR in at.session_state else None
        assert adopted is None, (bad, adopted)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["session"] = "0123456789abcdef"
    at.run()
    assert at.session_state[state.SESSION_DIR] == str(real)
