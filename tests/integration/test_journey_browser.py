"""The whole journey in a real browser, on the production-shaped hub (tls_hub.py):

log in through the OIDC provider, pick the GPU profile, watch the progress page say why
it waits (every GPU is taken at first) and move,
land in JupyterLab, open the getting-started notebook, run a cell and read its output.
Screenshots of each step go to tests/artifacts/journey/; a failing step keeps its
screenshot and the hub's log there.
"""

import re
import subprocess

import pytest
from playwright.sync_api import expect, sync_playwright

from ..support.browser import Journey, chromium, open_notebook, run_cells
from .conftest import take_gpus
from .tls_hub import IDP_PASSWORD, ISSUER

USER, LOGIN = "demo18", "ada"  # ada.lovelace@uni.example at the IdP, demo18 on the cluster
NOTEBOOK = "factorylab-notebooks/00-getting-started.ipynb"


@pytest.mark.timeout(900)  # the TLS hub's start, a GPU spawn and the browser's waits
def test_login_to_first_cell_output(tls_hub):
    tls_hub.admin.stop(USER)
    with sync_playwright() as playwright, chromium(playwright, ignore_https_errors=True) as page:
        journey = Journey(page, "journey", tls_hub.log)
        try:
            _journey(page, journey, tls_hub.url)
        finally:
            tls_hub.admin.stop(USER)


def _journey(page, journey: Journey, url: str) -> None:
    with journey.step("identity provider login"):
        page.goto(f"{url}/hub/login")
        page.get_by_role("button", name="Sign in with Test IdP").click()
        page.wait_for_url(f"{ISSUER}/interaction/**")
        page.fill("input[name=login]", LOGIN)
        page.fill("input[name=password]", IDP_PASSWORD)
    with journey.step("spawn form"):
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{url}/hub/spawn**")
        expect(page.locator("label[for=profile-gpu-2h]")).to_be_visible()
    with journey.step("gpu profile picked"):
        page.locator("label[for=profile-gpu-2h]").click()
        expect(page.locator("#profile-gpu-2h")).to_be_checked()
    # every GPU taken for a while: the page says why the session waits, then moves on (a
    # start on an idle cluster can be over before the page has shown its steps)
    held = take_gpus()
    try:
        with journey.step("progress page"):
            page.get_by_role("button", name="Start").click()
            page.wait_for_url(f"**/hub/spawn-pending/{USER}**")
            message = page.locator("#progress-message")
            expect(message).to_contain_text("Waiting for a free GPU", timeout=30_000)
    finally:
        subprocess.run(["scancel", *held], check=False)
    with journey.step("jupyterlab"):
        page.wait_for_url(f"**/user/{USER}/lab**", timeout=120_000)
        expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=60_000)
        seen = journey.progress_seen()
        widths = [width for width, _message in seen]
        assert len({message for _width, message in seen}) >= 2, seen  # it moved
        assert widths == sorted(widths) and widths[-1] > widths[0], seen
        assert any(message.startswith("Running on ") for _width, message in seen), seen
    with journey.step("getting started notebook"):
        cells = open_notebook(page, f"{url}/user/{USER}/lab/tree/{NOTEBOOK}")
        expect(cells.nth(4)).to_be_visible()
    with journey.step("cells run"):
        # the parameters and import cells, the heading, then the "your session" cell
        output = run_cells(page, cells, expect_text=None)
    with journey.step("cell output"):
        expect(output).to_contain_text("Slurm job", timeout=120_000)
        text = output.inner_text()
        assert re.search(r"Slurm job: \d+", text), text
        assert re.search(r"GPUs: \d", text), text  # the GPU profile's emulated GPU
        output.scroll_into_view_if_needed()
