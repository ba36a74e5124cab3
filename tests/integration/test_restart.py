"""Restarting the hub keeps running sessions reachable and re-adopts them."""

import time

from ..support.hub import job_id_of, open_kernel, proxied, squeue_active
from ..support.services import service


def test_hub_restart_keeps_a_session(hub, session):
    user = "demo22"  # in factorylab-course: its default account is training
    session(user, {"partition": "cpu", "account": "factorylab-demo"})
    token = hub.user_token(user)
    job = job_id_of(user)
    # Like a user's open tab: the session has already checked this token with the hub.
    assert proxied(hub, user, "api/status", token).status_code == 200

    service("restart", "hub", check=True)
    # The proxy is a separate daemon: the session answers even while the hub restarts.
    assert proxied(hub, user, "api/status", token).status_code == 200
    hub.wait_until_up()

    restarted = time.monotonic()
    server = hub.server(user)
    assert server and server["ready"], server
    assert job_id_of(user) == job
    # a GPU kernel opened now is still charged as its session, not to the default account
    kernel_id = open_kernel(hub, user, token, "slurm-pytorch-gpu")
    jobs = squeue_active(["-u", user, "-n", f"factorylab-kernel-{job}", "-o", "%a"]).split()
    assert jobs == ["factorylab-demo"], jobs
    gone = proxied(hub, user, f"api/kernels/{kernel_id}", token, method="DELETE")
    assert gone.status_code == 204, gone.text
    # Re-adopted, not mistaken for an orphan once the orphan grace (20 s) has passed.
    time.sleep(max(0.0, 45 - (time.monotonic() - restarted)))
    assert job_id_of(user) == job
    assert hub.server(user)["ready"]
    assert proxied(hub, user, "api/status", token).status_code == 200
