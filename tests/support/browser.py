"""Debian's Chromium through Playwright (never a downloaded browser), for the browser tests
and the time-to-first-cell benchmark."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import expect

CHROMIUM = "/usr/lib/chromium/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

# Recorded on the spawn-pending page into sessionStorage, which outlives the redirect
# into JupyterLab (same origin): every progress message and bar width the user saw.
RECORD_PROGRESS = """
if (location.pathname.includes('/hub/spawn-pending/')) {
  document.addEventListener('DOMContentLoaded', () => {
    const message = document.getElementById('progress-message');
    const bar = document.getElementById('progress-bar');
    const record = () => {
      const seen = JSON.parse(sessionStorage.getItem('factorylab-progress') || '[]');
      const entry = [parseFloat(bar.style.width) || 0, message.textContent.trim()];
      const last = seen[seen.length - 1];
      if (!last || last[0] !== entry[0] || last[1] !== entry[1]) seen.push(entry);
      sessionStorage.setItem('factorylab-progress', JSON.stringify(seen));
    };
    new MutationObserver(record).observe(message, {childList: true, subtree: true,
                                                   characterData: true});
    new MutationObserver(record).observe(bar, {attributes: true});
    record();
  });
}
"""


# The status bar's kernel item reads "<kernel> | Idle" once the kernel is up (before: "No
# Kernel | Initializing"); the toolbar's execution indicator says idle too early.
KERNEL_READY = re.compile(r"^(?!No Kernel).+ \| Idle$")


def open_notebook(page, notebook_url: str):
    """Open a notebook in JupyterLab and wait for its kernel; return its cells."""
    page.goto(notebook_url)
    return notebook_cells(page)


def notebook_cells(page):
    """Wait for the notebook the page is opening to have its kernel; return its cells."""
    expect(page.get_by_role("button", name=KERNEL_READY)).to_be_visible(timeout=120_000)
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")


def run_cells(page, cells, upto: int = 4, expect_text: str | None = "Slurm job"):
    """Run cells 1..``upto`` with Shift+Enter, as a user does; return cell ``upto``'s
    output, once it shows ``expect_text`` (at once if that is None)."""
    cells.nth(1).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Escape")
    for _ in range(upto):
        page.keyboard.press("Shift+Enter")
    output = cells.nth(upto).locator(".jp-OutputArea-output")
    if expect_text is not None:
        expect(output).to_contain_text(expect_text, timeout=120_000)
    return output


@contextlib.contextmanager
def chromium(playwright, **context_options) -> Iterator:
    """A page in a fresh headless Chromium context."""
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 900}, **context_options)
        context.add_init_script(RECORD_PROGRESS)
        yield context.new_page()
    finally:
        browser.close()


class Journey:
    """Screenshots named by step; on failure, the failing page and the hub's log."""

    def __init__(self, page, name: str, hub_log: Path | None = None):
        self.page, self.name, self.hub_log = page, name, hub_log
        self.directory = ARTIFACTS / name
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self.count = 0

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.count += 1
        slug = f"{self.count:02d}-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        try:
            yield
        except Exception:
            with contextlib.suppress(Exception):
                self.page.screenshot(path=str(self.directory / f"{slug}-FAILED.png"))
            if self.hub_log is not None and self.hub_log.exists():
                shutil.copy(self.hub_log, self.directory / "hub.log")
            raise
        self.page.screenshot(path=str(self.directory / f"{slug}.png"))

    def progress_seen(self) -> list[tuple[float, str]]:
        """The (bar width, message) pairs the spawn-pending page showed."""
        raw = self.page.evaluate("sessionStorage.getItem('factorylab-progress') || '[]'")
        return [tuple(entry) for entry in json.loads(raw)]
