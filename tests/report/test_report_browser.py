"""report/index.html in a real headless Chromium: the sections show, the figures draw, offline.

Debian's Chromium (`apt-get install chromium`) driven by Playwright; every request that is not
the page itself (file:) or inline data is recorded and refused, so a CDN reference or a font
fetch fails the test instead of quietly working on a machine with network.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.browser import CHROMIUM
from support.browser import CHROMIUM_ARGS as ARGS
from support.runs import fake_run

from automl_app import report

pytestmark = pytest.mark.slow

LOCAL = ("file:", "data:", "blob:", "about:")
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} not found (make browser, or apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package playwright is not installed (pip install playwright)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def _missing(reason: str) -> None:
    """Skip where the browser is missing, but fail in CI, which installs it (make browser)."""
    import os

    (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(reason)


def _open(browser, index: Path):
    """A page on `index` with every non-local request recorded and aborted; returns it + logs."""
    page = browser.new_page(viewport=VIEWPORT)
    external: list[str] = []
    errors: list[str] = []

    def route(r):
        if r.request.url.startswith(LOCAL):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(index.as_uri(), wait_until="load")
    return page, external, errors


def test_report_renders_offline_with_every_section(browser, tmp_path):
    run = fake_run(tmp_path, trials=12, accuracy=0.1)  # 10 completed trials, a chance-level model
    info = report.write_report(run, say=lambda _l: None)
    page, external, errors = _open(browser, Path(info["index"]))
    try:
        page.wait_for_selector("#fig-history svg.main-svg", state="visible", timeout=30_000)
        for section in ("#summary", "#chance-warning", "#leaderboard", "#importance", "#figures"):
            assert page.locator(section).is_visible(), section
        assert page.locator("#per-class").is_visible()
        assert page.locator("#per-class td", has_text="class_9").first.is_visible()
        # every interactive figure drew: one .plotly element with plotly's SVG per figure
        assert set(info["figures"]) == {
            "history",
            "parallel_coordinates",
            "intermediate_values",
            "importance",
            "slice",
        }
        for name in info["figures"]:
            fig = page.locator(f"#fig-{name}")
            assert fig.locator("svg.main-svg").first.is_visible(), name
            assert "plotly" in (fig.get_attribute("class") or ""), name
        assert page.locator(".plotly").count() >= len(info["figures"])
        # the leaderboard scrolls inside its box (sticky header); the page itself does not widen
        box = page.locator("#leaderboard .scroll")
        assert box.evaluate("e => getComputedStyle(e).overflowX") == "auto"
        assert box.evaluate("e => e.scrollWidth > e.clientWidth")  # twelve hp columns
        head = page.locator("#leaderboard thead th").first
        assert head.evaluate("e => getComputedStyle(e).position") == "sticky"
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
        # the PNGs are there for pasting
        assert page.locator("#plots img").count() >= 6
        assert page.locator("#plots img").first.evaluate("e => e.naturalWidth") > 0
    finally:
        page.close()
    assert external == [], f"the report asked the network for {external}"
    assert not errors, errors


def test_a_small_search_says_how_many_more_trials_importance_needs(browser, tmp_path):
    run = fake_run(tmp_path, trials=5)  # 3 completed
    info = report.write_report(run, say=lambda _l: None)
    page, external, errors = _open(browser, Path(info["index"]))
    try:
        note = page.locator("#importance p.note")
        assert note.is_visible()
        assert "7 more completed trials" in note.inner_text()
        assert page.locator("#chance-warning").count() == 0
        page.wait_for_selector("#fig-parallel_coordinates svg.main-svg", timeout=30_000)
    finally:
        page.close()
    assert external == [] and not errors, (external, errors)
