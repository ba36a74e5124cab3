"""Restarting the hub keeps running sessions reachable and re-adopts them."""

import time

from ..support.hub import job_id_of, proxied
from ..support.services import service


def test_hub_restart_keeps_a_session(hub, session):
    user = "demo37"
    session(user, {"partition": "cpu"})
    token = hub.user_token(user)
    job = job_id_of(user)
    # Like a user's open tab: the session has already checked this token with the hub.
    assert proxied(hub, user, "api/status", token).status_code == 200

    service("restart", "hub", check=True)
    # The proxy is a separate daemon: the session answers even while the hub restarts.
    assert proxied(hub, user, "api/status", token).status_code == 200
    hub.wait_until_up()

    server = hub.server(user)
    assert server and server["ready"], server
    assert job_id_of(user) == job
    # Re-adopted, not mistaken for an orphan once the orphan grace (20 s) has passed.
    time.sleep(45)
    assert job_id_of(user) == job
    assert hub.server(user)["ready"]
    assert proxied(hub, user, "api/status", token).status_code == 200
