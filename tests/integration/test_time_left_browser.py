"""The time left, its warning and "extend" in JupyterLab, in a real browser.

Debian's Chromium, driven by Playwright (never a downloaded browser). Screenshots of
each step go to tests/artifacts/.
"""

import re

import pytest
from playwright.sync_api import sync_playwright

from ..support.browser import ARTIFACTS, chromium
from ..support.hub import HUB_URL, demo_password
from ..support.metrics import scrape, total


def _seconds(text: str) -> int:
    match = re.search(r"(?:(\d+) h )?(\d+) min(?: (\d+) s)?", text)
    assert match, text
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@pytest.fixture
def browser_page():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright, chromium(playwright) as page:
        yield page


def test_status_bar_warning_and_extend(hub, session, browser_page):
    user, page = "demo39", browser_page
    session(user, {"partition": "cpu", "walltime": "00:06:00"})
    extensions = total(scrape(), "factorylab_extensions_total", result="ok")
    page.goto(f"{HUB_URL}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", demo_password())
    page.click("#login_submit")
    page.goto(f"{HUB_URL}/user/{user}/lab")
    item = page.locator(".factorylab-time-left")
    try:
        item.wait_for(timeout=60_000)
        page.wait_for_function(
            "document.querySelector('.factorylab-time-left').textContent.includes('min')"
        )
        first = _seconds(item.inner_text())
        assert 300 < first <= 360, item.inner_text()
        # the 15-minute warning (the session has 6), with an Extend action
        toast = page.locator(".Toastify__toast", has_text="Your session ends in")
        toast.wait_for(timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "time-left-warning.png"))
        page.wait_for_timeout(2_500)
        assert _seconds(item.inner_text()) < first  # it counts down
        # extend: the toast's action, then the dialog's "Extend"
        toast.get_by_role("button", name="Extend").click()
        page.locator(".jp-Dialog").get_by_role("button", name="Extend").click()
        page.locator(".Toastify__toast", has_text="Session extended").wait_for(timeout=30_000)
        assert _seconds(item.inner_text()) > 30 * 60
        assert total(scrape(), "factorylab_extensions_total", result="ok") == extensions + 1
        page.screenshot(path=str(ARTIFACTS / "time-left-extended.png"))
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "time-left-failure.png"))
        raise
