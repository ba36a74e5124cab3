"""Least privilege of tokens, and XSRF protection of what a browser can post.

(Isolation between users: test_isolation.py; the port endpoint: test_port_endpoint.py;
the hostile form table: test_spawn_form.py; the hub's sudo rights: test_deploy.py;
Secure cookies under TLS: test_tls_oidc.py.)
"""

import os
import re
import signal
import subprocess
import time

import requests

from spawners.hub.culler import CULLER_SCOPES

from ..support.hub import HUB_URL, demo_password, login, process_env, session_pid, squeue_active
from ..support.services import pid, service

USER = "demo27"


def _scopes(token: str) -> set[str]:
    response = requests.get(
        f"{HUB_URL}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return set(response.json()["scopes"])


def test_a_sessions_token_is_limited_to_its_own_user_and_server(hub, session):
    session(USER, {"partition": "cpu"})
    token = process_env(session_pid(USER))["JUPYTERHUB_API_TOKEN"]
    scopes = _scopes(token)
    assert scopes, "a session token has some scopes"
    for scope in scopes:
        assert re.search(rf"!(user={USER}|server={USER}/)$", scope), scope
    headers = {"Authorization": f"token {token}"}

    def call(method, path, **kwargs):
        return requests.request(
            method, f"{HUB_URL}/hub/api{path}", headers=headers, timeout=10, **kwargs
        )

    # what it needs: its own activity report
    assert call("POST", "/factorylab/activity", json={"kernel_activity": 0}).status_code == 204
    # what it must not do
    assert call("GET", "/users/demo01").status_code in (403, 404)
    assert call("GET", "/users").status_code == 403
    assert call("POST", f"/users/{USER}/tokens", json={}).status_code == 403
    assert call("DELETE", f"/users/{USER}/server").status_code == 403
    assert call("POST", "/users/demo01/server").status_code in (403, 404)
    assert call("GET", "/factorylab/sessions").status_code == 403


def _cullers(of_demo_hub: bool = True) -> list[int]:
    """Idle cullers running: the demo hub's children, or every one on the machine."""
    parent = []
    if of_demo_hub:
        hub_pid = pid("hub")
        if not hub_pid:
            return []
        parent = ["-P", str(hub_pid)]
    found = subprocess.run(
        ["pgrep", *parent, "-f", "jupyterhub_idle_culler --timeout=1 --cull-every="],
        capture_output=True,
        text=True,
    ).stdout.split()
    return [int(number) for number in found]


def test_the_culler_holds_only_the_culling_scopes():
    pids = _cullers()
    assert len(pids) == 1, "one idle culler runs, as the hub's user"
    token = process_env(pids[0])["JUPYTERHUB_API_TOKEN"]
    granted = {scope.split("!")[0] for scope in _scopes(token)}
    assert granted <= set(CULLER_SCOPES) | {"read:users:name", "read:users:activity"}, granted
    assert not {"admin:users", "tokens", "admin:servers", "servers"} & granted


def test_form_posts_without_the_xsrf_token_are_refused(hub):
    hub.stop(USER)
    browser, response = login(USER, demo_password())
    assert response.status_code == 302
    before = squeue_active(["-u", USER, "-n", "factorylab", "-o", "%i"])
    # the spawn form, posted from elsewhere: the session cookie alone is not enough
    forged = browser.post(
        f"{HUB_URL}/hub/spawn/{USER}",
        data={"profile": "cpu-notebook"},
        allow_redirects=False,
        timeout=30,
    )
    assert forged.status_code == 403, forged.status_code
    assert "xsrf" in forged.text.lower()
    # the REST API with the cookie alone (no token, no X-XSRFToken header)
    api = browser.post(f"{HUB_URL}/hub/api/users/{USER}/server", json={}, timeout=30)
    assert api.status_code == 403
    assert squeue_active(["-u", USER, "-n", "factorylab", "-o", "%i"]) == before
    assert not hub.server(USER)


def test_login_posts_without_the_xsrf_token_are_refused():
    response = requests.post(
        f"{HUB_URL}/hub/login",
        data={"username": USER, "password": demo_password()},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 403
    assert not [c for c in response.cookies if c.name == "jupyterhub-hub-login"]


def _eventually(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_hub_that_stops_or_dies_leaves_no_culler_behind(hub):
    """A stopped hub stops its culler; a killed hub's culler follows it (PDEATHSIG).

    JupyterHub starts the culler in a session of its own, out of reach of supervisord's
    stopasgroup/killasgroup: a hub that is stopped stops it itself, and one that is
    killed (or crashes) leaves it to the kernel's PDEATHSIG, while the service manager
    starts a new hub with one new culler."""
    for _ in range(2):
        assert service("restart", "hub") == 0
        hub.wait_until_up()
    time.sleep(2)
    assert _cullers(of_demo_hub=False) == _cullers(), "an orphaned culler polls on"

    assert service("stop", "hub") == 0
    try:
        assert _eventually(lambda: not _cullers(of_demo_hub=False), 5), (
            "the stopped hub's culler polls on"
        )
    finally:
        assert service("start", "hub") == 0
    hub.wait_until_up()
    time.sleep(2)

    killed, cullers = pid("hub"), set(_cullers())
    assert killed and len(cullers) == 1
    os.kill(killed, signal.SIGKILL)
    assert _eventually(lambda: not cullers & set(_cullers(of_demo_hub=False)), 10), (
        "the killed hub's culler polls on"
    )
    # killed, not stopped: supervisord (autorestart=unexpected) or systemd
    # (Restart=on-failure) starts the hub again
    assert _eventually(lambda: pid("hub") not in (None, killed), 30), "the hub stayed down"
    hub.wait_until_up()
    time.sleep(2)
    assert len(_cullers()) == 1 and _cullers(of_demo_hub=False) == _cullers()
