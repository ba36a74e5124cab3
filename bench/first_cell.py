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
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

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
from tests.support.browser import chromium, notebook_cells, open_notebook, run_cells
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


#: Where a start's time goes, as the browser sees it (:func:`phases`). The floor has no
#: hub: its server is ready when its /api/status answers, and it has no OAuth.
PHASES = (
    "until the server is ready",
    "OAuth round trip to the Lab page",
    "Lab, notebook, kernel and cells",
)


def phases(loads: list[tuple[float, str]], user: str, end: float) -> dict[str, float]:
    """Split a FactoryLab start by the page loads (seconds since Start, path) the browser
    made: its first request to the server (the hub or its spawn page sent it there, the
    server being ready); the first load of the Lab after the OAuth callback; then the
    rest, until the cell's output.

    >>> loads = [(0.1, "/hub/spawn"), (0.3, "/hub/spawn-pending/u"), (3.0, "/user/u/lab/x"),
    ...          (3.1, "/hub/api/oauth2/authorize"), (3.2, "/user/u/oauth_callback"),
    ...          (3.4, "/user/u/lab/x")]
    >>> phases(loads, "u", 9.0)["OAuth round trip to the Lab page"]
    0.4
    """
    prefix = f"/user/{user}/"
    server = next((t for t, path in loads if path.startswith(prefix)), None)
    callback = next((t for t, path in loads if path == f"{prefix}oauth_callback"), None)
    lab = next(
        (
            t
            for t, path in loads
            if callback is not None and t > callback and path.startswith(f"{prefix}lab")
        ),
        None,
    )
    if server is None or lab is None:
        raise RuntimeError(f"{user}'s start made unexpected page loads: {loads}")
    edges = (0.0, server, lab, end)
    return {name: round(b - a, 3) for name, a, b in zip(PHASES, edges[:-1], edges[1:], strict=True)}


def factorylab_run(playwright, hub: Hub, user: str) -> tuple[float, dict[str, float]]:
    hub.stop(user)
    loads: list[tuple[float, str]] = []
    with chromium(playwright) as page:
        # The hub sends the browser to the notebook once the server is ready (?next=), so
        # the Lab loads once, as the floor's does.
        notebook = f"/user/{user}/lab/tree/{NOTEBOOK}"
        spawn = "/hub/spawn?" + urlencode({"next": notebook})
        page.goto(f"{HUB_URL}/hub/login?" + urlencode({"next": spawn}))
        page.fill("#username_input", user)
        page.fill("#password_input", demo_password())
        page.click("#login_submit")
        page.locator("label[for=profile-cpu-notebook]").click()
        began = time.perf_counter()
        page.on(
            "request",
            lambda request: (
                request.resource_type == "document"
                and loads.append((time.perf_counter() - began, urlsplit(request.url).path))
            ),
        )
        page.get_by_role("button", name="Start").click()
        page.wait_for_url(f"**{notebook}", timeout=180_000)
        run_cells(page, notebook_cells(page))
        elapsed = time.perf_counter() - began
    hub.stop(user)
    return elapsed, phases(loads, user, elapsed)


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


def floor_run(playwright, user: str) -> tuple[float, dict[str, float]]:
    with chromium(playwright) as page:
        began = time.perf_counter()
        floor = submit_floor(user, FLOOR_ENV)
        try:
            wait_http(f"{floor.url}/api/status", headers=floor.headers)
            ready = time.perf_counter() - began
            # The token logs the browser in (jupyter-server sets its login cookie).
            run_first_cell(page, f"{floor.url}/lab", f"?token={floor.token}")
            elapsed = time.perf_counter() - began
        finally:
            subprocess.run(["scancel", floor.job], check=False)
    return elapsed, dict(
        zip(PHASES[::2], (round(ready, 3), round(elapsed - ready, 3)), strict=True)
    )


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("make bench runs as root, after make up")
    factorylab = Hub(ADMIN_TOKEN_FILE.read_text().strip())
    users = {"floor": "demo11", "factorylab": "demo16", "batchspawner": "demo21"}
    for user in users.values():
        place_notebook(user)
    samples: dict[str, list[float]] = {name: [] for name in users}
    split: dict[str, dict[str, list[float]]] = {}

    def timed(method: str, run: tuple[float, dict[str, float]]) -> float:
        """Keep a run's phases under ``method``; return its whole time."""
        for name, seconds in run[1].items():
            split.setdefault(method, {}).setdefault(name, []).append(seconds)
        return run[0]

    comparison = BatchspawnerHub()
    with sync_playwright() as playwright, comparison as batchspawner:
        runs = {
            "floor": lambda: timed("floor", floor_run(playwright, users["floor"])),
            "factorylab": lambda: timed(
                "factorylab", factorylab_run(playwright, factorylab, users["factorylab"])
            ),
            "batchspawner": lambda: batchspawner_run(
                playwright, batchspawner, users["batchspawner"], comparison.password
            ),
        }
        for run in runs.values():  # warm-up (page cache, kernel imports), not counted
            run()
        split.clear()
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
        "phases_median_s": {
            method: {name: round(statistics.median(v), 3) for name, v in by_phase.items()}
            for method, by_phase in split.items()
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_result("first_cell", report)
    print_medians(result)
    print("\nwhere the time goes (medians):")
    for method, by_phase in report["phases_median_s"].items():
        print(f"  {method}: " + ", ".join(f"{name} {s:.2f} s" for name, s in by_phase.items()))
    print(f"\nwritten to {RESULTS / 'first_cell.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
