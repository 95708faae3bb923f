"""Fine-tune page (AppTest): start a real job on this session's labels, see its curve, use the result."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from temzoo.train import jobs
from tests.labelled_sets import make_disk_set, stop_jobs
from ui import state

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "finetune.py")


@pytest.fixture()
def session(tmp_path):
    """A session folder; any job a failed test left running is stopped afterwards."""
    yield tmp_path / "session"
    stop_jobs(tmp_path / "session" / "jobs")


def test_no_labels_yet_says_so(tmp_path):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[state.SESSION_DIR] = str(tmp_path / "s")
    at.run()
    assert not at.exception
    assert any("No image/mask pairs" in w.value for w in at.warning)
    assert at.button(key="ft_start").disabled
    assert any("No jobs yet" in i.value for i in at.info)


def test_start_job_watch_curve_and_use_result(session):
    from temzoo.zoo import load_model

    make_disk_set(session / "labels", n=4, size=64, pixel_size_nm=0.5)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[state.SESSION_DIR] = str(session)
    at.run()
    assert not at.exception, at.exception
    assert "This session's labels (4)" in at.selectbox(key="ft_set").value
    at.selectbox(key="ft_base").set_value("scratch")
    at.selectbox(key="ft_strategy").set_value("scratch")
    at.radio(key="ft_budget_kind").set_value("epochs").run()
    # The form offers the library's measured defaults (it once offered 256 px tiles, batch 4 and lr 1e-3, measured
    # 0.04 F1 worse on a CPU, docs/FINETUNING.md runs B and C1).
    from temzoo.train.config import TrainConfig

    shown = (at.number_input(key="ft_batch").value, at.select_slider(key="ft_tile").value,
             at.number_input(key="ft_lr").value, at.selectbox(key="ft_validation").value)
    assert shown == tuple(getattr(TrainConfig, n) for n in ("batch_size", "tile_size", "lr", "validation"))
    assert at.selectbox(key="ft_downsample").value is None  # auto: the base's own working resolution
    at.selectbox(key="ft_validation").set_value("image")
    at.selectbox(key="ft_downsample").set_value(2.0)
    at.number_input(key="ft_epochs").set_value(1)
    at.number_input(key="ft_batch").set_value(2)
    at.select_slider(key="ft_tile").set_value(64)
    at.selectbox(key="ft_device").set_value("cpu")
    at.text_input(key="ft_name").set_value("my disks")
    at.button(key="ft_start").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])

    [job] = jobs.list_jobs(session / "jobs")
    cfg = jobs.read_config(job.dir)
    assert (cfg["strategy"], cfg["base"], cfg["epochs"], cfg["tile_size"]) == ("scratch", "scratch", 1, 64)
    assert (cfg["validation"], cfg["downsample"]) == ("image", 2.0)  # both travel with the job
    assert cfg["pixel_size_nm"] == 0.5  # the labelled set's recorded pixel size travels with the job
    st = jobs.wait(job.dir, timeout=180)
    assert st.state == "done", (st.error, jobs.read_log(job.dir))

    at.run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1  # the curve, drawn from metrics.jsonl
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["State"] == "done" and metrics["Epochs"] == "1"
    at.button(key=f"ft_use_{st.id}").click().run()
    assert at.session_state[state.MODEL_ID] == st.result
    assert Path(st.result).name == "my-disks"
    assert load_model(st.result).meta is not None


def test_network_size_is_offered_for_scratch_and_travels_with_the_job(session):
    """Advanced options: the size picker (docs/ZOO_SIZES.md) is live only for scratch; the ImageNet (timm) base
    option needs the Hub, so it is absent offline (HF_HUB_OFFLINE=1 in the tests)."""
    make_disk_set(session / "labels", n=4, size=64, pixel_size_nm=0.5)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[state.SESSION_DIR] = str(session)
    at.run()
    assert not at.exception, at.exception
    base = at.selectbox(key="ft_base")
    assert "scratch (random weights)" in base.options and not any("timm" in o for o in base.options)
    base.set_value("tem-denoise").run()
    assert at.selectbox(key="ft_size").disabled  # a zoo base brings its own network
    at.selectbox(key="ft_base").set_value("scratch").run()
    size = at.selectbox(key="ft_size")
    assert not size.disabled and size.options == ["auto (large on a GPU, small on a CPU)",
                                                  "small (0.88 M parameters)",
                                                  "large (full-depth ResNet-18 U-Net, 14.3 M)"]
    at.selectbox(key="ft_strategy").set_value("scratch")
    at.selectbox(key="ft_size").set_value("large")
    at.selectbox(key="ft_device").set_value("cpu")
    at.button(key="ft_start").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    [job] = jobs.list_jobs(session / "jobs")
    assert jobs.read_config(job.dir)["size"] == "large"
    jobs.cancel(job.dir, wait_s=30)


def test_a_resumed_job_that_kept_its_base_shows_both_attempts_and_the_bases_f1(tmp_path):
    """#14.4/#14.5 on the job panel: "Ran for" counts the attempt before the resume, and a kept base shows its own
    validation F1, not the epochs' (a job folder as the worker leaves it)."""
    import json

    from temzoo.train.config import BASE_KEPT_NOTE

    session = tmp_path / "s"
    job, result = session / "jobs" / "20261205-000000-abcdef", tmp_path / "result"
    job.mkdir(parents=True)
    result.mkdir()
    (result / "temzoo.json").write_text(json.dumps({"provenance": {
        "metrics": {"f1": 0.812, "iou": 0.683}, "notes": [f"{BASE_KEPT_NOTE} on validation (val F1 0.812): ..."]}}))
    (job / "config.json").write_text(json.dumps({"strategy": "full", "base": "steel-dislocation-loops", "epochs": 3}))
    (job / "status.json").write_text(json.dumps({
        "id": job.name, "dir": str(job), "name": "tuned", "state": "done", "started": 100.0, "finished": 130.0,
        "prior_seconds": 12.0, "attempts": 2, "result": str(result), "device": "cpu"}))
    (job / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_f1": 0.0, "seconds": 9}) + "\n")
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[state.SESSION_DIR] = str(session)
    at.run()
    assert not at.exception, at.exception
    values = {m.label: m.value for m in at.metric}
    assert values["Best val F1"] == "0.812" and values["Ran for"] == "42 s"
    assert any("2 attempts, 42 s in all" in c.value for c in at.caption)
