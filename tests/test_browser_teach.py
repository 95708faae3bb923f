"""The Teach page in a real browser against a real ``streamlit run app.py``: open lesson 1, move the dose slider
(the image is re-imaged from the cached exit wave), reveal the answer."""

from __future__ import annotations

from tests.util import wait_for_app


def _snr(page) -> float:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="SNR").first
    return float(metric.locator('[data-testid="stMetricValue"]').inner_text())


def test_teach_lesson_in_the_browser(app_server, page, artifacts):
    page.goto(app_server)
    wait_for_app(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Teach", exact=True).click()
    wait_for_app(page)
    page.get_by_text("Pick a lesson above").wait_for()  # the overview
    page.locator('[data-testid="stRadio"]').get_by_text("1. What does a micrograph look like to the network?").click()
    wait_for_app(page, timeout_ms=120_000)  # first visit: one multislice run for the lesson field
    page.get_by_role("heading", name="1. What does a micrograph look like to the network?").wait_for()
    page.get_by_text("Read the plots").wait_for()
    before = _snr(page)

    dose = page.get_by_role("slider").first  # the dose slider (1000 e/A^2)
    assert dose.get_attribute("aria-valuetext") in ("1000", None) or dose.get_attribute("aria-valuenow")
    dose.focus()
    for _ in range(4):  # 1000 -> 500 -> 200 -> 100 -> 50 e/A^2
        page.keyboard.press("ArrowLeft")
    page.wait_for_function(
        """(before) => {
            const m = [...document.querySelectorAll('[data-testid="stMetric"]')].find(e => e.innerText.includes('SNR'));
            return m && parseFloat(m.querySelector('[data-testid="stMetricValue"]').innerText) !== before;
        }""", arg=before, timeout=60_000)
    wait_for_app(page)
    after = _snr(page)
    assert after < before, (before, after)  # fewer electrons: more shot noise

    page.get_by_text("Show the answer").click()
    page.get_by_text("Shot noise grows only as the square root").wait_for()
    page.get_by_text("In this run:").first.wait_for()
    page.screenshot(path=str(artifacts / "teach_lesson1.png"), full_page=True)
