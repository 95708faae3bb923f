"""AppTest for the Teach page: every lesson renders, sliders re-image, answers quote the run's numbers, reset works,
and a real (CI-sized) lesson run goes through the page's own buttons."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.lesson_fixtures import build
from tests.util import page_file


@pytest.fixture()
def lesson_home(tmp_path_factory, monkeypatch):
    ws, _ = build(tmp_path_factory.mktemp("lesson_home"))
    monkeypatch.setenv("TEMZOO_HOME", str(ws.root.parent))
    return ws


def _page(lesson: str) -> AppTest:
    at = AppTest.from_file(page_file("teach"), default_timeout=180)
    at.session_state["teach_lesson"] = lesson
    return at.run()


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _all_markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


@pytest.mark.parametrize("lesson", ["fringes", "labels", "layers", "trust"])
def test_every_lesson_renders(lesson_home, lesson):
    at = _page(lesson)
    assert not at.exception and not at.error
    assert at.header[0].value[0].isdigit()  # the lesson title
    assert any(b.label == "Reset this lesson" for b in at.button)
    assert "Run the experiment above first" in _all_markdown(at)  # the answer waits for the numbers


def test_overview_is_the_landing_view(lesson_home):
    at = AppTest.from_file(page_file("teach"), default_timeout=60).run()
    assert not at.exception and not at.error
    assert at.radio(key="teach_lesson").value == "overview"
    assert len(at.dataframe[0].value) == 5
    at.radio(key="teach_lesson").set_value("trust").run()
    assert at.header[0].value.startswith("5.")


def test_lesson1_slider_answer_reset(lesson_home):
    at = _page("dose-defocus")
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert at.header[0].value.startswith("1.")
    assert any("stand-in" in w.value for w in at.warning) or any("zoo model" in c.value for c in at.caption)
    snr_high = float(_metric(at, "SNR"))
    f1 = _metric(at, "Model F1 vs truth")
    assert f1 != "-" and 0 <= float(f1) <= 1
    at.select_slider(key="teach_dose-defocus_dose").set_value(10).run()
    assert not at.exception
    snr_low = float(_metric(at, "SNR"))
    assert snr_low < snr_high  # fewer electrons, more shot noise
    answer = at.expander[0]
    assert answer.label == "Show the answer"
    assert "In this run" in "\n".join(m.value for m in answer.markdown)
    next(b for b in at.button if b.label == "Reset this lesson").click().run()
    assert at.select_slider(key="teach_dose-defocus_dose").value == 1000
    assert float(_metric(at, "SNR")) == pytest.approx(snr_high)


def test_lesson4_counts_and_lesson5_run(lesson_home):
    at = _page("layers")
    table = at.dataframe[0].value
    rows = dict(zip(table["strategy"], table["trainable"]))
    assert rows["freeze-encoder"] < rows["full"] and rows["freeze-decoder"] < rows["full"]

    at = _page("trust")
    at.button(key="teach_trust_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert float(_metric(at, "Temperature")) > 0
    assert "In this run" in "\n".join(m.value for m in at.expander[0].markdown)
    assert any("deliberate error" in s.value for s in at.subheader)


def test_lesson3_runs_from_the_page(lesson_home):
    at = _page("labels")
    at.slider(key="teach_labels_seconds").set_value(5)
    at.multiselect(key="teach_labels_counts").set_value([1])
    at.button(key="teach_labels_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert list(table["labelled images"]) == [1, 1] and (table["best F1"] >= 0).all()
    assert "pretrained vs" in _all_markdown(at)
