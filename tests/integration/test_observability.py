"""What an operator sees: /hub/metrics, Prometheus and its dashboard, the event log,
and the admin view, after a real one-GPU session on the demo cluster.

Prometheus is Debian's, run by `make up PROMETHEUS=true` (make test turns it on).
"""

import grp
import math
import os
import pwd
import re
import stat
import subprocess

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from ..support.browser import ARTIFACTS, chromium
from ..support.hub import HUB_URL, demo_admin, demo_password, job_id_of, login, proxied, wait_gone
from ..support.metrics import (
    EVENTS_LOG,
    METRICS_TOKEN_FILE,
    PROMETHEUS_URL,
    dashboard_queries,
    events_of,
    prometheus_query,
    scrape,
    total,
    wait_for_query,
)

USER = "demo29"
GPU_PROFILE = "gpu-2h"  # 1 GPU on the gpu partition
HISTOGRAMS = ("factorylab_spawn_queue_wait_seconds", "factorylab_spawn_server_start_seconds")


@pytest.fixture
def browser_page():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright, chromium(playwright) as page:
        yield page


def _has_value(result) -> bool:
    return bool(result) and any(not math.isnan(float(r["value"][1])) for r in result)


def test_a_gpu_spawn_is_counted_logged_scraped_and_listed_for_admins(hub, session, browser_page):
    labels = {"partition": "gpu", "profile": GPU_PROFILE}
    # Prometheus has the spawn histograms' series at 0 before the spawn (so rate() sees it)
    wait_for_query(
        f'factorylab_spawn_queue_wait_seconds_count{{partition="gpu",profile="{GPU_PROFILE}"}}',
        bool,
    )
    before = scrape()
    session(USER, {"profile": GPU_PROFILE})
    job = job_id_of(USER)
    after = scrape()

    # /hub/metrics: the GPU, the running session, both timings, the Slurm commands
    held = total(after, "factorylab_gpus_held") - total(before, "factorylab_gpus_held")
    assert held == 1, held
    assert total(after, "factorylab_sessions", state="running", partition="gpu") >= 1
    for name in HISTOGRAMS:
        counted = total(after, f"{name}_count", **labels) - total(before, f"{name}_count", **labels)
        assert counted == 1, (name, counted)
    sbatch = "factorylab_slurm_commands_total"
    assert total(after, sbatch, verb="sbatch", result="ok") > total(
        before, sbatch, verb="sbatch", result="ok"
    )
    assert total(after, sbatch, verb="squeue") > total(before, sbatch, verb="squeue")
    assert total(after, "factorylab_scheduler_up") == 1
    # a session with a GPU has the GPU dashboards (sessions without one do not: test_images)
    token = hub.user_token(USER)
    assert proxied(hub, USER, "nvdashboard/accelerators/check", token).status_code == 200

    # the event log: one JSON line per step, with user, job, node and seconds
    lines = events_of(job)
    steps = [line["event"] for line in lines]
    assert steps[0] == "submitted" and steps[-2:] == ["running", "ready"], steps
    node = lines[-1]["node"]
    assert re.fullmatch(r"c0\d", node) and all(line["user"] == USER for line in lines)
    assert all(isinstance(line["seconds"], float) for line in lines)

    # Prometheus scraped it with the read-only token; every dashboard panel has data
    wait_for_query('sum(factorylab_gpus_held{partition="gpu"})', lambda r: _has_value(r))
    for title, expr in dashboard_queries():
        result = wait_for_query(expr, _has_value, timeout=30)
        assert result, title
    anonymous = requests.get(f"{PROMETHEUS_URL}/api/v1/query", params={"query": "up"}, timeout=10)
    assert anonymous.status_code == 401  # other users of the login node get nothing
    up = prometheus_query('up{job="factorylab-hub"}')
    assert [r["value"][1] for r in up] == ["1"], up

    # the admin view, in Chromium: the session with its node, GPUs and time left
    page = browser_page
    page.goto(f"{HUB_URL}/hub/login")
    admin, password = demo_admin()
    page.fill("#username_input", admin)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.goto(f"{HUB_URL}/hub/home")
    page.click("#factorylab-admin-link")  # admins find it in the hub's navigation bar
    row = page.locator(f'#fl-holding tr[data-job="{job}"]')
    try:
        expect(row).to_be_visible(timeout=30_000)
        expect(row.locator(".fl-node")).to_have_text(node)
        expect(row.locator(".fl-gpus")).to_contain_text("1")
        expect(row.locator(".fl-time-left")).to_have_text(re.compile(r"1 h 5\d min"))
        page.screenshot(path=str(ARTIFACTS / "admin-view.png"), full_page=True)
        # Stop, through the hub's API from the admin's browser
        row.locator(".fl-stop").click()
        expect(page.locator("#fl-message")).to_contain_text(f"job {job}", timeout=30_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "admin-view-failure.png"), full_page=True)
        raise
    assert wait_gone(hub, USER, 60), "the admin view's Stop did not stop the session"
    stopped = [line for line in events_of(job) if line["event"] == "stopped"]
    assert [line["cause"] for line in stopped] == ["requested"], stopped


def test_metrics_and_the_admin_view_refuse_users(hub):
    user_token = hub.user_token(USER)
    metrics_token = METRICS_TOKEN_FILE.read_text().strip()
    url = f"{HUB_URL}/hub/metrics"
    assert requests.get(url, timeout=10).status_code == 403
    as_user = requests.get(url, headers={"Authorization": f"token {user_token}"}, timeout=10)
    assert as_user.status_code == 403
    as_prometheus = requests.get(
        url, headers={"Authorization": f"Bearer {metrics_token}"}, timeout=10
    )
    assert as_prometheus.status_code == 200 and "factorylab_scheduler_up" in as_prometheus.text
    as_admin = hub.http.get(url, timeout=10)
    assert as_admin.status_code == 200  # the admin API token make up writes may look too
    # the scrape token reads metrics and nothing else
    users = requests.get(
        f"{HUB_URL}/hub/api/users", headers={"Authorization": f"token {metrics_token}"}, timeout=10
    )
    assert users.status_code == 403
    browser, _ = login(USER, demo_password())  # a logged-in user who is no admin
    admin_view = browser.get(f"{HUB_URL}/hub/factorylab/admin", timeout=10)
    assert "factorylab-admin-link" not in browser.get(f"{HUB_URL}/hub/home", timeout=10).text
    assert admin_view.status_code == 403, admin_view.status_code
    # the demo admin does not share the demo users' password
    assert login(demo_admin()[0], demo_password())[1].status_code != 302


def test_the_event_log_is_the_hubs_to_write_but_not_to_replace():
    log = os.lstat(EVENTS_LOG)
    assert stat.S_ISREG(log.st_mode) and stat.S_IMODE(log.st_mode) == 0o640
    assert (pwd.getpwuid(log.st_uid).pw_name, grp.getgrgid(log.st_gid).gr_name) == (
        "factorylab",
        "adm",
    )
    directory = os.lstat(EVENTS_LOG.parent)
    assert directory.st_uid == 0 and stat.S_IMODE(directory.st_mode) & 0o022 == 0
    # as the hub's account: no new file, no link, no rename in root's log directory
    for attempt in (
        ["touch", f"{EVENTS_LOG}.planted"],
        ["ln", "-sf", "/etc/shadow", f"{EVENTS_LOG}.6"],
        ["mv", f"{EVENTS_LOG}.5", f"{EVENTS_LOG}.moved"],
    ):
        done = subprocess.run(["sudo", "-n", "-u", "factorylab", *attempt], capture_output=True)
        assert done.returncode != 0, attempt
    assert not any(EVENTS_LOG.parent.glob("events.log.planted"))
