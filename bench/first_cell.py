"""Time to first cell: from clicking Start to a notebook cell's output, in a real browser.

Debian's Chromium through Playwright, on an idle cluster, three ways in the same run:

* **factorylab**: logged in to the demo hub, the "Notebook on CPU" card, Start; then
  JupyterLab opens, the notebook opens, its first cells run and "Your session" prints;
* **batchspawner**: the same on a hub with plain ``batchspawner.SlurmSpawner`` 1.3
  (opening ``/hub/spawn``, which starts at once: it has no form);
* **floor**: ``sbatch`` of ``jupyter-lab`` from the base image env on a compute node (on the
  node's address, with a token made for the job), the browser opening it, token in the
  URL, as soon as ``/api/status`` answers; the clock starts at the sbatch.

Every run opens the same notebook (a copy of 00-getting-started in the user's home)
with a fresh browser context. Writes ``bench/results/first_cell.json``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.common import (
    FLOOR_ENV,
    RESULTS,
    BatchspawnerHub,
    median_ratio,
    print_medians,
    print_run,
    submit_floor,
    summarise,
    wait_http,
    write_result,
)
from tests.support.browser import chromium, open_notebook, run_cells
from tests.support.hub import ADMIN_TOKEN_FILE, HUB_URL, Hub, demo_password

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
NOTEBOOK = "bench-first-cell.ipynb"
SOURCE = Path("/opt/factorylab/notebooks/00-getting-started.ipynb")


def place_notebook(user: str) -> None:
    """The same notebook in every user's home, owned by them."""
    target = Path(f"/home/{user}") / NOTEBOOK
    shutil.copyfile(SOURCE, target)
    shutil.chown(target, user, user)


def run_first_cell(page, lab: str, query: str = "") -> None:
    """Open the notebook under ``lab`` (a /lab URL, then ``query``), run up to "Your
    session", await it."""
    run_cells(page, open_notebook(page, f"{lab}/tree/{NOTEBOOK}{query}"))


def factorylab_run(playwright, hub: Hub, user: str) -> float:
    hub.stop(user)
    with chromium(playwright) as page:
        page.goto(f"{HUB_URL}/hub/login?next=/hub/spawn")
        page.fill("#username_input", user)
        page.fill("#password_input", demo_password())
        page.click("#login_submit")
        page.locator("label[for=profile-cpu-notebook]").click()
        began = time.perf_counter()
        page.get_by_role("button", name="Start").click()
        page.wait_for_url(f"**/user/{user}/lab**", timeout=180_000)
        run_first_cell(page, f"{HUB_URL}/user/{user}/lab")
        elapsed = time.perf_counter() - began
    hub.stop(user)
    return elapsed


def batchspawner_run(playwright, hub: Hub, user: str, password: str) -> float:
    hub.stop(user)
    with chromium(playwright) as page:
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", user)
        page.fill("#password_input", password)  # its dummy authenticator's, for this run
        page.click("#login_submit")
        began = time.perf_counter()
        page.goto(f"{hub.url}/hub/spawn")  # no form: the request starts the server
        page.wait_for_url(f"**/user/{user}/lab**", timeout=180_000)
        run_first_cell(page, f"{hub.url}/user/{user}/lab")
        elapsed = time.perf_counter() - began
    hub.stop(user)
    return elapsed


def floor_run(playwright, user: str) -> float:
    with chromium(playwright) as page:
        began = time.perf_counter()
        floor = submit_floor(user, FLOOR_ENV)
        try:
            wait_http(f"{floor.url}/api/status", headers=floor.headers)
            # The token logs the browser in (jupyter-server sets its login cookie).
            run_first_cell(page, f"{floor.url}/lab", f"?token={floor.token}")
            elapsed = time.perf_counter() - began
        finally:
            subprocess.run(["scancel", floor.job], check=False)
    return elapsed


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("make bench runs as root, after make up")
    factorylab = Hub(ADMIN_TOKEN_FILE.read_text().strip())
    users = {"floor": "demo11", "factorylab": "demo16", "batchspawner": "demo21"}
    for user in users.values():
        place_notebook(user)
    samples: dict[str, list[float]] = {name: [] for name in users}
    comparison = BatchspawnerHub()
    with sync_playwright() as playwright, comparison as batchspawner:
        runs = {
            "floor": lambda: floor_run(playwright, users["floor"]),
            "factorylab": lambda: factorylab_run(playwright, factorylab, users["factorylab"]),
            "batchspawner": lambda: batchspawner_run(
                playwright, batchspawner, users["batchspawner"], comparison.password
            ),
        }
        for run in runs.values():  # warm-up (page cache, kernel imports), not counted
            run()
        for i in range(RUNS):
            for name, run in runs.items():
                samples[name].append(run())
            print_run(i, RUNS, samples)
    result = {name: summarise(values) for name, values in samples.items()}
    ratios = {
        "factorylab_vs_floor": median_ratio(result, "factorylab"),
        "batchspawner_vs_floor": median_ratio(result, "batchspawner"),
        "factorylab_vs_batchspawner": median_ratio(result, "factorylab", "batchspawner"),
    }
    report = {
        "benchmark": "first_cell",
        "what": "seconds from clicking Start until a notebook cell's output shows, in "
        "Chromium: JupyterLab loads, the notebook opens, its kernel starts, cells run",
        "floor": "sbatch of jupyter-lab from the base image env on a compute node; "
        "the browser opens it, with its token, when /api/status answers (no hub, no login, "
        "no proxy)",
        "runs_per_method": RUNS,
        "methods": result,
        "ratios": ratios,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_result("first_cell", report)
    print_medians(result)
    print(f"\nwritten to {RESULTS / 'first_cell.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
