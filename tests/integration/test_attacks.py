"""Attacks by an ordinary user (or the hub's account) against the real deployment.

Each test performs one attack of issue 14 as the attacker would, and checks that it no
longer works. (Dask: test_dask_security.py; the cross-site spawn link:
test_spawn_form.py; OIDC mapping: test_tls_oidc.py; sudo and the extend helper:
test_deploy.py.)
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from ..support import services
from ..support.hub import (
    HUB_URL,
    job_id_of,
    process_env,
    proxied,
    proxy_routes,
    run_in_kernel,
    session_pid,
    spawn_events,
    squeue_active,
)
from ..support.nodes import LOGIN_ADDRESS, job_node, run_on_node

HUB_SECRETS = ("FACTORYLAB_ADMIN_API_TOKEN", "CONFIGPROXY_AUTH_TOKEN")


def as_user(user: str, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    """Run ``argv`` as ``user`` (a plain login, no privileges)."""
    return subprocess.run(
        ["runuser", "-u", user, "--", *argv], capture_output=True, text=True, cwd="/", **kwargs
    )


def home(user: str) -> Path:
    return Path(f"/home/{user}")


@pytest.fixture
def slow_server_start():
    """A user whose JupyterLab takes 40 s to start (their own ~/.jupyter config)."""
    created = []

    def make(user: str, code: str = "import time\ntime.sleep(40)\n") -> None:
        config = home(user) / ".jupyter"
        as_user(user, "mkdir", "-p", str(config), check=True)
        as_user(user, "tee", str(config / "jupyter_server_config.py"), input=code, check=True)
        created.append(config / "jupyter_server_config.py")

    yield make
    for path in created:
        path.unlink(missing_ok=True)


def _hub_answers_within(hub, seconds: float) -> bool:
    began = time.monotonic()
    try:
        requests.get(f"{HUB_URL}/hub/api/", timeout=seconds).raise_for_status()
    except requests.RequestException:
        return False
    return time.monotonic() - began < seconds


@pytest.mark.parametrize("trap", ["symlink", "fifo"])
def test_a_swapped_session_log_shows_nothing_of_the_hub_and_never_blocks_it(
    hub, slow_server_start, trap
):
    """Issue 14, 2: the failure tail came from a user-owned path the hub opened."""
    user = "demo16"
    hub.stop(user)
    slow_server_start(user)
    response = hub.spawn(user, {"partition": "cpu"})
    assert response.status_code in (201, 202), response.text
    job = job_id_of(user)
    log = home(user) / ".factorylab" / "servers" / "default" / "logs" / f"job-{job}.log"
    deadline = time.monotonic() + 60
    while not log.exists():
        assert time.monotonic() < deadline, "the job never wrote its log"
        time.sleep(0.2)
    # the attack: the user swaps their own log for a link or a FIFO, then ends the job
    as_user(user, "rm", "-f", str(log), check=True)
    if trap == "symlink":
        as_user(user, "ln", "-s", "/proc/self/environ", str(log), check=True)
    else:
        as_user(user, "mkfifo", str(log), check=True)
    events: list[dict] = []
    reader = threading.Thread(target=lambda: events.extend(spawn_events(hub, user)))
    reader.start()
    as_user(user, "scancel", job, check=True)
    reader.join(timeout=60)
    assert _hub_answers_within(hub, 5), "the hub's event loop is blocked"
    assert events and events[-1].get("failed"), events
    message = events[-1]["message"]
    assert "ended before its server started" in message
    for secret in HUB_SECRETS:
        assert secret not in message
    assert str(log) in message  # where the user finds their log
    assert hub.server(user) is None
    # (a server that fails by itself still shows its log's tail, sent by the job's own
    # launcher: test_failure.py)


def test_another_user_cannot_plant_anything_where_a_job_logs(hub, session):
    """Issue 14, 4: the log path was in a shared directory that squeue shows to all."""
    victim, attacker = "demo22", "demo23"
    session(victim, {"partition": "cpu"})
    job = job_id_of(victim)
    shown = subprocess.run(
        ["runuser", "-u", attacker, "--", "scontrol", "show", "job", job],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "StdOut=/dev/null" in shown, shown
    log_dir = home(victim) / ".factorylab" / "servers" / "default" / "logs"
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700 and log_dir.owner() == victim
    for target in (log_dir / f"job-{int(job) + 1}.log", log_dir / "x"):
        planted = as_user(attacker, "ln", "-s", f"/home/{victim}/.bashrc", str(target))
        assert planted.returncode != 0 and "Permission denied" in planted.stderr
    assert not Path("/var/log/factorylab/jobs").exists()


def test_the_sessions_port_is_not_shown_to_other_users(hub, session):
    """Issue 14, 3: the port was in `ps`, so another user could bind it first."""
    user = "demo26"
    session(user, {"partition": "cpu"})
    pid = session_pid(user)
    # another user on the session's node
    node = job_node(job_id_of(user))
    seen_by_others = run_on_node(
        node, ["ps", "-ww", "-o", "args=", "-p", str(pid)], user="demo27"
    ).stdout
    assert "jupyterhub-singleuser" in seen_by_others
    assert "--port" not in seen_by_others, seen_by_others
    assert "port_retries=0" in seen_by_others


def test_a_job_cannot_point_the_proxy_at_the_hub(hub, slow_server_start):
    """Issue 14, 11: a job reported the hub's own port, looping the proxy into the hub.

    On the cluster the hub and the proxy are on the login node, and a session's address
    is its node's, from Slurm, never the job's word: a job that reports the proxy's port
    gets at most port 8000 of its own compute node, and its start fails."""
    user = "demo29"
    hub.stop(user)
    # the user's own server config reports the proxy's public port before the launcher
    slow_server_start(
        user,
        "import json, os, urllib.request\n"
        "url = os.environ['JUPYTERHUB_API_URL'] + '/factorylab/port'\n"
        "req = urllib.request.Request(url, data=json.dumps({'port': 8000}).encode(),\n"
        "    headers={'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']})\n"
        "urllib.request.urlopen(req).read()\n",
    )
    login_node = {"127.0.0.1", "localhost", LOGIN_ADDRESS, socket.gethostname()}
    # the launcher's own report is then refused (409): it stops the server and the job
    # ends. (JupyterHub's answer to the start request is then its own 500.)
    with ThreadPoolExecutor(1) as pool:
        spawning = pool.submit(hub.spawn, user, {"partition": "cpu"})
        deadline = time.monotonic() + 90
        while not spawning.done() or squeue_active(["-u", user, "-n", "factorylab"]):
            route = proxy_routes().get(f"/user/{user}")
            if route:  # never toward the login node's hub or proxy
                assert urlsplit(route["target"]).hostname not in login_node, route
            assert time.monotonic() < deadline, "the job with a false port never ended"
            time.sleep(0.5)
    assert spawning.result().status_code != 200
    server = hub.server(user)
    assert server is None or not server["ready"], server
    hub.stop(user)


def test_the_hub_account_cannot_reach_root(hub):
    """Issue 14, 5: files the hub could write were read, sourced or signalled by root."""

    def as_hub(*argv):
        return as_user("factorylab", *argv)

    # the daemons' logs and, under supervisord, their descriptions are root's; the hub
    # cannot swap them
    managed = [] if services.systemd() else ["/etc/supervisor/conf.d"]
    directories = ["/var/log/factorylab", *managed]
    for directory in directories:
        info = os.stat(directory)
        assert info.st_uid == 0 and not info.st_mode & 0o022, directory
        assert as_hub("ln", "-s", "/etc/shadow", f"{directory}/planted").returncode != 0
    if not services.systemd():
        # supervisord's socket is root's: the hub can neither drive nor query it
        status = as_hub("supervisorctl", "status")
        assert status.returncode != 0 and services.program("hub") not in status.stdout
        # the descriptions hold the daemons' environment, secrets included: root-only
        # (their environment files, which make up copies there, are parsed as KEY=VALUE
        # lines, never sourced: tests/unit/test_daemon_role.py)
        for name in ("hub", "proxy"):
            conf = Path(f"/etc/supervisor/conf.d/{services.program(name)}.conf")
            info = conf.stat()
            assert info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0o600, conf
            assert as_hub("cat", str(conf)).returncode != 0
    # the proxy holds its own token only, never the admin token
    proxy_env = process_env(services.pid("proxy"))
    assert "CONFIGPROXY_AUTH_TOKEN" in proxy_env
    assert "FACTORYLAB_ADMIN_API_TOKEN" not in proxy_env
    mode = stat.S_IMODE(os.stat("/var/log/factorylab/proxy.log").st_mode)
    assert not mode & 0o004, "proxy.log is world-readable"


def test_a_session_keeps_its_reports_across_a_hub_restart(hub, session):
    """Issue 14, 7: after a restart the session's own token got 403 from its endpoints."""
    user = "demo38"
    session(user, {"profile": "idle-test"})  # culled after 30 idle seconds
    token = process_env(session_pid(user))["JUPYTERHUB_API_TOKEN"]
    headers = {"Authorization": f"token {token}"}
    services.service("restart", "hub", check=True)
    hub.wait_until_up()
    facts = requests.get(f"{HUB_URL}/hub/api/factorylab/session", headers=headers, timeout=10)
    assert facts.status_code == 200, facts.text
    assert facts.json()["job_id"] == job_id_of(user)
    # a kernel that executes past the idle limit: its reports must keep the session alive
    user_token = hub.user_token(user)
    began = time.monotonic()
    run_in_kernel(hub, user, user_token, "import time\ntime.sleep(55)", timeout=90)
    assert time.monotonic() - began > 50
    assert hub.server(user) and hub.server(user)["ready"], "a busy session was culled"
    assert proxied(hub, user, "api/status", user_token).status_code == 200
    # once the session stops, its server token is revoked, although the hub no longer
    # knew it in plain text after the restart
    hub.stop(user)
    stale = requests.get(f"{HUB_URL}/hub/api/user", headers=headers, timeout=10)
    assert stale.status_code == 403, stale.text


def test_a_server_that_exits_loses_its_route_at_once(hub, session):
    """The review of issue 14, 3: between a server's exit and the hub's next snapshot,
    another user could bind the freed port and receive the user's requests."""
    user = "demo31"
    session(user, {"partition": "cpu"})
    assert f"/user/{user}" in proxy_routes()
    token = hub.user_token(user)
    proxied(hub, user, "api/shutdown", token, method="POST")  # File > Shut Down
    began = time.monotonic()
    while f"/user/{user}" in proxy_routes():
        assert time.monotonic() - began < 5, "the route outlived the server"
        time.sleep(0.2)
    # and the hub marks it stopped soon after (it watches the queue closely meanwhile)
    while hub.server(user) is not None:
        assert time.monotonic() - began < 15, "the hub did not notice the end"
        time.sleep(0.5)


def test_sessions_create_private_files(hub, session):
    """Issue 14, low: sessions used umask 0022."""
    user = "demo30"
    session(user, {"partition": "cpu"})
    code = (
        "import os, stat\nopen('umask-probe.txt', 'w').close()\n"
        "print(oct(stat.S_IMODE(os.stat('umask-probe.txt').st_mode)))\n"
        "os.unlink('umask-probe.txt')"
    )
    assert run_in_kernel(hub, user, hub.user_token(user), code).strip() == "0o600"


def test_a_superscript_digit_is_a_400_that_names_the_field(hub):
    user = "demo30"
    hub.stop(user)
    response = hub.spawn(user, {"partition": "gpu", "gpus": "\u00b2"})
    assert response.status_code == 400, response.text
    assert "gpus: must be a whole number" in response.json()["message"]


def test_a_hung_slurm_command_does_not_outlast_the_timeout():
    """Issue 14, also: sudo forks, and a hung sbatch below it blocked past the timeout."""
    import asyncio

    from spawners.slurm.client import KILL_GRACE, SlurmClient, SlurmError

    controller = int(Path("/run/slurmctld.pid").read_text())
    client = SlurmClient(timeout=3)
    os.kill(controller, signal.SIGSTOP)  # the controller hangs: sbatch waits for ever
    try:
        began = time.monotonic()
        with pytest.raises(SlurmError, match="did not answer within 3 s"):
            asyncio.run(client.submit("#!/bin/bash\nsleep 1\n", "demo30"))
        elapsed = time.monotonic() - began
    finally:
        os.kill(controller, signal.SIGCONT)
    assert elapsed < 3 + 2 * KILL_GRACE + 1, f"returned after {elapsed:.1f} s"


def test_the_benchmarks_comparison_hub_is_closed(hub):
    """Issue 14, 6: make bench's batchspawner hub ran as root, open to any login."""
    from bench.common import BENCH_SUDOERS, BENCH_USER, BatchspawnerHub

    comparison = BatchspawnerHub(build_env=False)
    with comparison as bench_hub:
        pid = comparison.process.pid
        assert Path(f"/proc/{pid}").owner() == BENCH_USER
        listening = subprocess.run(
            ["ss", "-Hltnp"], capture_output=True, text=True, check=True
        ).stdout
        mine = [line for line in listening.splitlines() if f"pid={pid}," in line]
        # the proxy on loopback; the hub's API on the login node's cluster address (its
        # jobs on the compute nodes post their port there), never on every address
        assert mine and all(
            line.split()[3].rsplit(":", 1)[0] in ("127.0.0.1", LOGIN_ADDRESS) for line in mine
        ), mine
        login = requests.Session()
        login.get(f"{bench_hub.url}/hub/login", timeout=10)
        for password in ("any", ""):
            refused = login.post(
                f"{bench_hub.url}/hub/login",
                data={"username": "demo01", "password": password, "_xsrf": login.cookies["_xsrf"]},
                allow_redirects=False,
                timeout=10,
            )
            assert refused.status_code == 403, (password, refused.status_code)
        # batchspawner's route sets any attribute a job posts; this one takes a port only
        token = bench_hub.user_token("demo01")
        posted = requests.post(
            f"{bench_hub.url}/hub/api/batchspawner",
            headers={"Authorization": f"token {token}"},
            json={"batch_submit_cmd": "touch /root/pwned"},
            timeout=10,
        )
        assert posted.status_code == 403, posted.text
        assert "only a FactoryLab session's own server token" in posted.text
    assert not BENCH_SUDOERS.exists()
