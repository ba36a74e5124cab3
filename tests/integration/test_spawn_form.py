"""The spawn form on the real hub: hostile input, live availability, one scheduler
query for many users, reservations, spawn-by-URL, named servers, bad site files."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from spawners.session.request import FIELDS
from tests.unit.session.test_request import ENTITLED_HOSTILE, HOSTILE

from ..support.hub import (
    HUB_URL,
    demo_password,
    job_id_of,
    login,
    proxied,
    sdiag_count,
    squeue_active,
)
from ..support.metrics import scrape, total

REPO = Path(__file__).resolve().parents[2]
SITE = yaml.safe_load((REPO / "hub_config" / "site.local.yaml").read_text())
INTERVAL = SITE["slurm"]["availability_interval"]


def browser(user: str) -> requests.Session:
    session, response = login(user, demo_password())
    assert response.status_code == 302, response.text
    return session


def form_data(page: str) -> dict:
    raw = re.search(r'id="factorylab-form-data">(.*?)</script>', page, re.S)
    assert raw, page[-2000:]
    return json.loads(raw.group(1))


def post_form(session: requests.Session, fields: dict, path: str = "/hub/spawn"):
    data = {"_xsrf": session.cookies.get("_xsrf"), "customise": "on"}
    data.update(fields)
    return session.post(f"{HUB_URL}{path}", data=data, allow_redirects=False, timeout=60)


def error_of(page: str) -> str:
    match = re.search(r'class="spawn-error-msg[^"]*">(.*?)</p>', page, re.S)
    return match.group(1).strip() if match else ""


def as_form_values(options: dict) -> dict:
    """A table row as a browser would post it (every value becomes text)."""
    return {
        key: [str(item) for item in value] if isinstance(value, list) else str(value)
        for key, value in options.items()
    }


TABLE = [(row, "demo11") for row in HOSTILE if set(row[0]) <= set(FIELDS)] + [
    (row, "demo21") for row in ENTITLED_HOSTILE
]


def test_the_hostile_table_through_the_real_form_submits_nothing(hub):
    sessions = {user: browser(user) for user in {"demo11", "demo21"}}
    for user in sessions:
        hub.stop(user)
    submits = sdiag_count("REQUEST_SUBMIT_BATCH_JOB")
    for (options, field, _words), user in TABLE:
        response = post_form(sessions[user], as_form_values(options))
        message = error_of(response.text)
        assert response.status_code == 400, (options, response.status_code)
        assert message.startswith("Error: Your session was not submitted."), message
        assert f"{field}: " in message, (options, message)
        assert "Traceback" not in response.text
    assert len(TABLE) >= 40
    assert sdiag_count("REQUEST_SUBMIT_BATCH_JOB") == submits
    assert not squeue_active(["-u", "demo11,demo21"])


def test_a_refused_form_keeps_what_was_typed(hub):
    session = browser("demo11")
    hub.stop("demo11")
    refusals = total(scrape(), "factorylab_refusals_total", field="gpus")
    response = post_form(session, {"partition": "gpu", "gpus": "9", "walltime": "03:30:00"})
    assert response.status_code == 400
    assert "gpus: 9 is outside the allowed range 0-4" in error_of(response.text)
    # the operator's count of refusals, by the field at fault
    assert total(scrape(), "factorylab_refusals_total", field="gpus") == refusals + 1
    assert 'value="9"' in response.text and 'value="03:30:00"' in response.text


def free_gpus(session: requests.Session) -> int:
    page = session.get(f"{HUB_URL}/hub/spawn", timeout=30)
    assert page.status_code == 200, page.status_code
    return form_data(page.text)["partitions"]["gpu"]["free_gpus"]


def test_free_gpus_drop_by_one_while_a_one_gpu_session_runs(hub, session):
    viewer = browser("demo12")
    hub.stop("demo12")
    time.sleep(INTERVAL + 1)  # a fresh figure
    before = free_gpus(viewer)
    session("demo13", {"profile": "gpu-2h"})
    deadline = time.monotonic() + 3 * INTERVAL
    seen = before
    while time.monotonic() < deadline and seen == before:
        time.sleep(1)
        seen = free_gpus(viewer)
    assert seen == before - 1
    assert squeue_active(["-u", "demo13", "-o", "%b"]) == "gres:gpu:1"


def test_forty_form_renders_cost_one_scheduler_query(hub):
    users = [f"demo{i:02d}" for i in range(1, 41)]
    with ThreadPoolExecutor(8) as pool:
        sessions = list(pool.map(browser, users))
    running = [user for user in users if hub.server(user)]
    assert not running, f"these users still run a server: {running}"
    time.sleep(INTERVAL + 1)  # the shared cache is stale: the next view refreshes it
    kinds = ("REQUEST_NODE_INFO", "REQUEST_PARTITION_INFO", "REQUEST_RESERVATION_INFO")
    before = {kind: sdiag_count(kind) for kind in kinds}
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(lambda s: s.get(f"{HUB_URL}/hub/spawn", timeout=60), sessions))
    elapsed = time.monotonic() - started
    after = {kind: sdiag_count(kind) for kind in kinds}
    assert all(page.status_code == 200 and "factorylab-form" in page.text for page in pages)
    assert elapsed < INTERVAL, f"40 renders took {elapsed:.1f} s, longer than one cache period"
    for kind in kinds:
        assert after[kind] - before[kind] <= 1, (kind, before[kind], after[kind])
    assert after["REQUEST_NODE_INFO"] - before["REQUEST_NODE_INFO"] == 1  # it did refresh


@pytest.fixture
def reservation():
    name = f"fl-test-{int(time.time())}"
    subprocess.run(
        [
            "scontrol",
            "create",
            "reservation",
            f"ReservationName={name}",
            "Users=demo14",
            "StartTime=now",
            "Duration=10",
            "Nodes=c01",
            "CoreCnt=1",
            "Flags=IGNORE_JOBS",
        ],
        check=True,
        capture_output=True,
    )
    yield name
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # busy while a job still runs in it
        subprocess.run(["scontrol", "delete", f"ReservationName={name}"], capture_output=True)
        if (
            name
            not in subprocess.run(
                ["scontrol", "-o", "show", "reservation"], capture_output=True, text=True
            ).stdout
        ):
            return
        time.sleep(1)
    raise AssertionError(f"reservation {name} could not be deleted")


def test_reservations_are_offered_only_to_their_users(hub, reservation, session):
    # `reservation` before `session`: the session stops first, then the reservation goes.
    member, other = browser("demo14"), browser("demo15")
    hub.stop("demo14")
    hub.stop("demo15")
    deadline = time.monotonic() + 3 * INTERVAL
    page = ""
    while time.monotonic() < deadline and f'value="{reservation}"' not in page:
        time.sleep(1)
        page = member.get(f"{HUB_URL}/hub/spawn", timeout=30).text
    assert f'<option value="{reservation}"' in page
    assert reservation not in other.get(f"{HUB_URL}/hub/spawn", timeout=30).text
    refused = post_form(other, {"reservation": reservation})
    assert refused.status_code == 400
    assert "not an active reservation you may use" in error_of(refused.text)
    session("demo14", {"reservation": reservation})
    assert squeue_active(["-u", "demo14", "-o", "%v"]) == reservation


def test_a_course_link_fills_in_the_form_and_starting_needs_the_post(hub, session):
    """A GET from any web page (a link, an <img>) must not submit a job (issue 14, 12)."""
    user = "demo16"
    hub.stop(user)
    visitor = browser(user)
    link = visitor.get(
        f"{HUB_URL}/hub/spawn?opt-profile=cpu-large", allow_redirects=False, timeout=60
    )
    try:
        assert link.status_code == 200, link.text[-500:]
        assert 'value="cpu-large" autocomplete="off" checked' in link.text
        assert "The link you followed chose the settings below" in link.text
        # the attack itself: a cross-site GET with GPU options submits nothing
        attack = visitor.get(
            f"{HUB_URL}/hub/spawn?opt-partition=gpu&opt-gpus=1&opt-walltime=00:01:00",
            allow_redirects=False,
            timeout=60,
        )
        assert attack.status_code == 200 and 'name="gpus"' in attack.text
        time.sleep(2)
        assert squeue_active(["-u", user, "-n", "factorylab"]) == ""
        assert hub.server(user) is None
        started = post_form(visitor, {"profile": "cpu-large", "customise": ""})
        assert started.status_code == 302, started.text[-500:]
        hub.wait_ready(user)
        job = job_id_of(user)
        assert squeue_active(["-j", job, "-o", "%P %C %m %l"]) == "cpu 8 16G 8:00:00"
    finally:
        hub.stop(user)


def test_named_servers_each_get_their_own_port(hub):
    user = "demo17"
    hub.stop(user)
    hub.ensure_user(user)
    try:
        for name, profile in (("", "cpu-notebook"), ("second", "gpu-2h")):
            path = f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"
            response = hub.api("POST", path, json={"profile": profile})
            assert response.status_code in (201, 202), response.text
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            servers = hub.api("GET", f"/users/{user}").json()["servers"]
            if {"", "second"} <= set(servers) and all(s["ready"] for s in servers.values()):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"not both ready: {servers}")
        token = hub.user_token(user)
        assert proxied(hub, user, "api/status", token).status_code == 200
        assert proxied(hub, user, "second/api/status", token).status_code == 200
        partitions = squeue_active(["-u", user, "-o", "%P %k"]).splitlines()
        assert sorted(partitions) == [
            f"cpu factorylab:{user}:default",
            f"gpu factorylab:{user}:second",
        ]
    finally:
        hub.api("DELETE", f"/users/{user}/servers/second")
        hub.stop(user)


BAD_SITES = [
    (lambda d: d["profiles"]["gpu-2h"].update(gpus=8), "profiles.gpu-2h.gpus"),
    (lambda d: d["group_limits"]["factorylab-course"].update(partitions=["gpuu"]), "gpuu"),
    (lambda d: d["accounts"].update(source="ldap"), "accounts.source"),
    (lambda d: d["partitions"]["cpu"].update(max_memory="lots"), "partitions.cpu.max_memory"),
]


@pytest.mark.parametrize(("mutate", "key"), BAD_SITES)
def test_an_invalid_site_file_stops_the_hub_and_check_site(mutate, key):
    data = yaml.safe_load((REPO / "hub_config" / "site.local.yaml").read_text())
    mutate(data)
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:
        Path(directory).chmod(0o755)  # readable by the hub's user
        site = Path(directory) / "site.yaml"
        site.write_text(yaml.safe_dump(data))
        site.chmod(0o644)
        _assert_refused(site, key)


def _assert_refused(site: Path, key: str) -> None:
    hub = subprocess.run(
        [
            "runuser",
            "-u",
            "factorylab",
            "--",
            "/usr/bin/env",
            f"FACTORYLAB_SITE={site}",
            "/opt/factorylab/hub/bin/jupyterhub",
            "-f",
            "/etc/factorylab/jupyterhub_config.py",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert hub.returncode == 2, hub.stderr[-2000:]
    assert "the hub cannot start" in hub.stderr and key in hub.stderr, hub.stderr[-2000:]
    assert "Traceback" not in hub.stderr
    check = subprocess.run(
        ["/opt/factorylab/hub/bin/factorylab", "check-site", str(site)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 2 and key in check.stderr
