"""GPU stewardship on the real cluster: idle culling by kernel activity, time left, extend.

The demo site file gives profile ``idle-test`` (1 GPU, group factorylab-testers) an idle
limit of 30 seconds; the culler checks every 10 s and sessions report every 10 s.
"""

import contextlib
import json
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import websocket

from ..support.hub import (
    ADMIN_TOKEN_FILE,
    HUB_URL,
    demo_password,
    job_id_of,
    login,
    proxied,
    send_execute,
    squeue_active,
)
from ..support.metrics import events_of, scrape, total

IDLE_LIMIT = 30
CULLED_WITHIN = IDLE_LIMIT + 10 + 10 + 30  # limit, a report, a culler check, and slack


def _gpus_in_use() -> int:
    """GPUs in use on all compute nodes together."""
    out = subprocess.run(
        ["scontrol", "-d", "-o", "show", "node"], capture_output=True, text=True, check=True
    ).stdout
    return sum(int(n) for n in re.findall(r"GresUsed=gpu:(?:\w+:)?(\d+)", out))


def _kernel_socket(hub, user, token):
    kernel = proxied(hub, user, "api/kernels", token, method="POST", json={"name": "python3"})
    kernel_id = kernel.json()["id"]
    url = hub.url.replace("http", "ws", 1) + f"/user/{user}/api/kernels/{kernel_id}/channels"
    return websocket.create_connection(url, header=[f"Authorization: token {token}"], timeout=30)


def _open_tab(hub, user, token, stop: threading.Event) -> None:
    """What an open JupyterLab tab does: poll the server's APIs every few seconds."""
    while not stop.is_set():
        for path in ("api/kernels", "api/sessions", "api/contents", "api/status"):
            with contextlib.suppress(requests.RequestException):
                proxied(hub, user, path, token)
        stop.wait(3)


@pytest.mark.timeout(900)  # two spawns, a Dask worker's start, then the idle limit itself
def test_idle_gpu_session_is_culled_busy_one_is_not(hub, session):
    idle_user, busy_user = "demo36", "demo37"
    gpus_before = _gpus_in_use()
    culls_before = total(scrape(), "factorylab_culls_total", cause="idle")
    for user in (idle_user, busy_user):
        session(user, {"profile": "idle-test"})
    idle_job = job_id_of(idle_user)
    assert _gpus_in_use() == gpus_before + 2
    idle_token, busy_token = hub.user_token(idle_user), hub.user_token(busy_user)

    # the idle session: a kernel that ran one cell (a Dask worker with it), and an open tab
    idle_ws = _kernel_socket(hub, idle_user, idle_token)
    send_execute(
        idle_ws,
        "from dask_jobqueue import SLURMCluster\nfrom distributed import Client\n"
        "cluster = SLURMCluster(); cluster.scale(1)\n"
        "Client(cluster).wait_for_workers(1, timeout=120)",
    )
    deadline = time.monotonic() + 120
    while not squeue_active(["-u", idle_user, "-n", f"dask-{idle_user}-default"]):
        assert time.monotonic() < deadline, "the idle session's Dask worker never started"
        time.sleep(1)
    # the busy session: a cell that executes longer than the idle limit
    busy_ws = _kernel_socket(hub, busy_user, busy_token)
    send_execute(busy_ws, "import time\ntime.sleep(200)")

    stop_tab = threading.Event()
    tab = threading.Thread(target=_open_tab, args=(hub, idle_user, idle_token, stop_tab))
    tab.start()
    began = time.monotonic()
    try:
        while hub.server(idle_user) and time.monotonic() - began < CULLED_WITHIN:
            time.sleep(2)
    finally:
        stop_tab.set()
        tab.join()
        for ws in (idle_ws, busy_ws):
            ws.close()
    culled_after = time.monotonic() - began
    assert hub.server(idle_user) is None, "the idle session was not culled despite its policy"
    assert culled_after >= IDLE_LIMIT - 15, f"culled too early ({culled_after:.0f} s)"
    # its job and its Dask worker are gone, and the GPU is free in Slurm
    assert not squeue_active(["-u", idle_user])
    assert _gpus_in_use() == gpus_before + 1
    # the busy session, past the same limit, still runs
    assert hub.server(busy_user) and hub.server(busy_user)["ready"]
    # counted and logged for the operator: one idle cull, and why the session stopped
    assert total(scrape(), "factorylab_culls_total", cause="idle") == culls_before + 1
    ended = [(e["event"], e.get("cause")) for e in events_of(idle_job)][-2:]
    assert ended == [("culled", "idle"), ("stopped", "culled")], ended

    browser, _response = login(idle_user, demo_password())
    page = browser.get(f"{HUB_URL}/hub/user/{idle_user}/lab", timeout=30)
    assert "without kernel activity, to free its GPU" in page.text, page.text[-1500:]


def _session_facts(hub, user, token):
    response = proxied(hub, user, "factorylab/session", token)
    assert response.status_code == 200, response.text
    return response.json()


def test_time_left_warning_and_extend_within_policy(hub, session):
    user = "demo38"
    session(user, {"partition": "cpu", "walltime": "00:06:00"})
    token = hub.user_token(user)
    first = _session_facts(hub, user, token)
    assert 300 < first["time_left_seconds"] <= 360
    assert first["warning"].startswith("Your session ends in 6 minutes")
    assert first["warnings_at_seconds"] == [900, 300]
    time.sleep(3)
    assert _session_facts(hub, user, token)["time_left_seconds"] < first["time_left_seconds"]

    # JupyterLab loads the status-bar extension that shows this
    lab = proxied(hub, user, "lab", token)
    assert lab.status_code == 200 and '"factorylab-session"' in lab.text
    # (built by @jupyterlab/builder: the entry file's name is hashed, the code is a chunk)
    static = Path("/opt/factorylab/envs/base/share/jupyter/labextensions/factorylab-session")
    built = json.loads((static / "package.json").read_text())["jupyterlab"]["_build"]["load"]
    entry = proxied(hub, user, f"lab/extensions/factorylab-session/{built}", token)
    assert entry.status_code == 200 and "factorylab-session" in entry.text
    chunks = [p for p in (static / "static").glob("*.js") if "registerStatusItem" in p.read_text()]
    assert chunks, "no built chunk of the extension registers the status item"
    script = proxied(hub, user, f"lab/extensions/factorylab-session/static/{chunks[0].name}", token)
    assert script.status_code == 200 and "registerStatusItem" in script.text

    # within policy: the site's step (30 minutes); Slurm shows the new limit
    extended = proxied(hub, user, "factorylab/session/extend", token, method="POST", json={})
    assert extended.status_code == 200, extended.text
    assert extended.json()["time_left_seconds"] > 30 * 60
    assert extended.json()["warning"] is None
    job = squeue_active(["-u", user, "-o", "%l"])
    assert job == "36:00", job
    # Dask workers started from now on may run until the new end, less a minute
    dask_file = Path(f"/home/{user}/.factorylab/servers/default/dask/factorylab-session.yaml")
    directives = json.loads(dask_file.read_text())["jobqueue"]["slurm"]["job-extra-directives"]
    deadline = next(d for d in directives if d.startswith("--deadline="))[len("--deadline=") :]
    new_end = extended.json()["ends_at"]
    assert time.mktime(time.strptime(deadline, "%Y-%m-%dT%H:%M:%S")) == new_end - 60
    # beyond policy (the cpu partition allows 8 hours in all): refused with the reason
    refused = proxied(
        hub, user, "factorylab/session/extend", token, method="POST", json={"by": "10:00:00"}
    )
    assert refused.status_code == 400
    assert "may run 08:00:00 in all; this one has 00:36:00" in refused.json()["message"]
    assert squeue_active(["-u", user, "-o", "%l"]) == "36:00"
    bad = proxied(
        hub, user, "factorylab/session/extend", token, method="POST", json={"by": "forever"}
    )
    assert bad.status_code == 400 and bad.json()["message"].startswith("by:")

    # the admin view in the hub's REST API has the same facts
    admin = requests.get(
        f"{HUB_URL}/hub/api/factorylab/sessions",
        headers={"Authorization": f"token {ADMIN_TOKEN_FILE.read_text().strip()}"},
        timeout=30,
    )
    assert admin.status_code == 200, admin.text
    row = next(r for r in admin.json()["sessions"] if r["user"] == user)
    assert row["time_left_seconds"] > 30 * 60 and row["extendable_until"] > row["ends_at"]
    # a user's own token cannot list everyone's sessions
    mine = requests.get(
        f"{HUB_URL}/hub/api/factorylab/sessions",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert mine.status_code == 403
