"""A real site's shape: a login node and compute nodes (issue 16).

This machine is the login node (hub, proxy, slurmctld, no slurmd); each compute node is
a network, UTS and mount namespace with its own sshd, munged and slurmd. Sessions live
on the compute nodes and are reached at their node's address; Dask workers on other
nodes join a session's scheduler; a node that fails is news, not a mystery.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from ..support.hub import (
    HUB_LOG,
    job_id_of,
    next_page_says,
    proxied,
    proxy_routes,
    run_in_kernel,
    wait_gone,
)
from ..support.nodes import (
    LOGIN_ADDRESS,
    compute_nodes,
    job_node,
    node_address,
    node_service_running,
    run_on_node,
)
from ..support.services import running, service

NODES = compute_nodes()
SLURMD_TIMEOUT = 30  # slurm.conf (ansible/roles/slurm/defaults)
STEADY_POLL = 20  # site file: slurm.poll_interval_steady


def _proxy_targets() -> dict[str, str]:
    """The proxy's routes: ``{path: target}``, paths without a trailing slash."""
    return {path.rstrip("/"): route["target"] for path, route in proxy_routes().items()}


def _wait_node_state(node: str, wanted: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["sinfo", "--noheader", f"--nodes={node}", "--format=%T"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if re.fullmatch(wanted, state):
            return state
        time.sleep(1)
    return state


def test_each_compute_node_is_a_host_of_its_own():
    assert len(NODES) >= 2, NODES  # make up's default: two compute nodes
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert set(NODES) <= {line.split()[0] for line in namespaces.splitlines() if line}
    # the login node runs slurmctld, the hub and the proxy, but no slurmd
    assert not running("slurmd") and running("slurmctld")
    slurmds = subprocess.run(["pgrep", "-x", "slurmd"], capture_output=True, text=True).stdout
    homes = [
        subprocess.run(["ip", "netns", "identify", pid], capture_output=True, text=True).stdout
        for pid in slurmds.split()
    ]
    assert sorted(home.strip() for home in homes) == NODES  # one slurmd per node, none here
    credential = subprocess.run(["munge", "-n"], capture_output=True, text=True, check=True).stdout
    for node in NODES:
        address = node_address(node)
        assert address.startswith("10.213.0.") and address != LOGIN_ADDRESS
        assert run_on_node(node, ["hostname"]).stdout.strip() == node
        inside = run_on_node(node, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert f" {address}/24 " in inside
        # every node's name resolves on every node, and the hub's API answers there
        for other in NODES:
            assert run_on_node(node, ["getent", "hosts", other]).stdout.split()[0] == node_address(
                other
            )
        hub_api = run_on_node(
            node,
            [
                "python3",
                "-c",
                f"import socket; socket.create_connection(('{LOGIN_ADDRESS}', 8081), 5)",
            ],
        )
        assert hub_api.returncode == 0, hub_api.stderr
        # its own daemons, under its own supervisord; munge keys agree with the login node's
        assert all(node_service_running(node, name) for name in ("sshd", "munge", "slurmd"))
        decoded = run_on_node(node, ["unmunge"], input=credential)
        assert decoded.returncode == 0 and "STATUS:          Success" in decoded.stdout
        # /tmp and /run are the node's own; /home is shared
        marker = f"/tmp/factorylab-node-test-{node}"
        assert run_on_node(node, ["touch", marker]).returncode == 0
        assert not os.path.exists(marker)
        assert all(
            run_on_node(other, ["test", "-e", marker]).returncode == 1
            for other in NODES
            if other != node
        )
        assert run_on_node(node, ["test", "-e", "/run/slurmctld.pid"]).returncode == 1
        home_file = f"/home/demo01/.factorylab-node-test-{node}"
        assert run_on_node(node, ["touch", home_file], user="demo01").returncode == 0
        assert os.path.exists(home_file)
        os.unlink(home_file)
    # the nodes differ: GPU types and per-node counts are real
    gres = subprocess.run(
        ["sinfo", "--noheader", "--Node", "--partition=gpu", "--format=%N %G"],
        capture_output=True,
        text=True,
    ).stdout
    layout = dict(line.split(maxsplit=1) for line in gres.splitlines())
    assert layout["c01"].startswith("gpu:h100:4") and layout["c02"].startswith("gpu:a100:2")


@pytest.mark.timeout(600)
def test_a_burst_of_40_lands_on_every_node_and_answers_through_the_proxy(hub):
    users = [f"demo{n:02d}" for n in range(1, 41)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hub.stop, users))
    try:
        began = time.monotonic()
        with ThreadPoolExecutor(len(users)) as pool:
            responses = list(pool.map(lambda u: hub.spawn(u, {"partition": "cpu"}), users))
        assert all(r.status_code in (201, 202) for r in responses), [r.text for r in responses]
        with ThreadPoolExecutor(len(users)) as pool:
            servers = list(pool.map(lambda u: hub.wait_ready(u, timeout=420), users))
        elapsed = time.monotonic() - began
        assert all(server["ready"] for server in servers)
        nodes = {job_node(job_id_of(user)) for user in users}
        assert nodes == set(NODES), f"the 40 sessions ran on {nodes} only"
        targets = _proxy_targets()
        addresses = {node_address(node) for node in NODES}
        for user in users:
            target = targets[f"/user/{user}"]
            assert re.fullmatch(r"http://10\.213\.0\.\d+:\d+", target), target
            assert target.split("//")[1].split(":")[0] in addresses
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda u: proxied(hub, u, "api/status", hub.user_token(u)), users)
            )
        assert [a.status_code for a in answers] == [200] * len(users)
        print(f"burst of 40 across {sorted(nodes)}: all ready after {elapsed:.1f} s")
    finally:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(hub.stop, users))


# A Dask cluster of one worker placed by `placement` (an sbatch option that names this
# node), computing on it; the cluster stays up (the node-failure test crashes its node).
DASK_ON = """
import json, socket, dask
from dask_jobqueue import SLURMCluster
from distributed import Client
extra = dask.config.get("jobqueue.slurm.job-extra-directives")
extra = extra + ["PLACEMENT" + socket.gethostname()]
cluster = SLURMCluster(job_extra_directives=extra)
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=180)
print(json.dumps({
    "scheduler": cluster.scheduler_address,
    "scheduler_node": socket.gethostname(),
    "worker_nodes": sorted(set(client.run(socket.gethostname).values())),
    "sum": client.submit(sum, range(101)).result(),
}))
"""


def _dask_facts(hub, user: str, placement: str) -> dict:
    code = DASK_ON.replace("PLACEMENT", placement)
    return json.loads(run_in_kernel(hub, user, hub.user_token(user), code, timeout=300))


@pytest.mark.timeout(600)
def test_dask_workers_on_another_node_join_the_sessions_scheduler(hub, session):
    user = "demo06"
    session(user, {"partition": "cpu"})
    facts = _dask_facts(hub, user, "--exclude=")
    assert facts["sum"] == 5050
    assert facts["scheduler_node"] == job_node(job_id_of(user))
    assert facts["worker_nodes"] and facts["scheduler_node"] not in facts["worker_nodes"], facts
    assert facts["scheduler"].startswith(f"tls://{node_address(facts['scheduler_node'])}:")


def _down_since(node: str, timeout: float = 0) -> float:
    """When Slurm set the node down (epoch seconds), from its reason's time stamp; waits
    up to ``timeout`` seconds for Slurm to do so."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            ["scontrol", "show", "node", node], capture_output=True, text=True, check=True
        ).stdout
        stamp = re.search(r"Reason=.*\[\S+@(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\]", out)
        if stamp and re.search(r"State=\S*DOWN", out):
            return datetime.fromisoformat(stamp.group(1)).timestamp()
        assert time.monotonic() < deadline, f"Slurm has not set {node} down: {out}"
        time.sleep(1)


def _crash(node: str) -> None:
    """Kill every process of the node, as a power cut would (again, until none is left)."""
    for _ in range(20):
        pids = subprocess.run(["ip", "netns", "pids", node], capture_output=True, text=True)
        if not pids.stdout.split():
            return
        subprocess.run(["kill", "-KILL", *pids.stdout.split()], capture_output=True)
        time.sleep(0.2)
    raise AssertionError(f"processes of {node} survived: {pids.stdout}")


def _link(node: str, state: str) -> None:
    """Cut (down) or mend (up) the node's one link to the cluster network."""
    subprocess.run(["ip", "link", "set", f"fl-{node}", state], check=True)


@pytest.fixture
def restore_node():
    """Bring back the nodes a test took down, as make up would (its link, its program)."""
    taken = []
    yield taken.append
    for node in taken:
        _link(node, "up")
        service("start", f"node-{node}")
        subprocess.run(
            ["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True
        )
        state = _wait_node_state(node, r"idle|mixed|allocated", 90)
        assert re.fullmatch(r"idle|mixed|allocated", state), f"{node} did not come back: {state}"


def _left_in_queue(user: str, timeout: float) -> str:
    """The user's jobs Slurm still lists after ``timeout`` seconds (empty: none)."""
    deadline = time.monotonic() + timeout
    left = "x"
    while left and time.monotonic() < deadline:
        left = subprocess.run(
            ["squeue", "--noheader", f"--user={user}"], capture_output=True, text=True
        ).stdout.strip()
        time.sleep(1)
    return left


def _still_alive(node: str, pids: set[str], timeout: float) -> set[str]:
    """Which of ``pids`` still run on the node after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(2)
        alive = {pid for pid in alive if run_on_node(node, ["kill", "-0", pid]).returncode == 0}
    return alive


@pytest.mark.timeout(900)
@pytest.mark.parametrize("failure", ["crash", "cut-link", "scontrol-down"])
def test_a_node_failure_is_news_and_leaves_no_orphan(hub, session, restore_node, failure):
    user = {"crash": "demo07", "cut-link": "demo09", "scontrol-down": "demo08"}[failure]
    session(user, {"partition": "cpu"})
    job_id = job_id_of(user)
    node = job_node(job_id)
    if failure == "crash":  # a Dask worker on the same node goes down with it
        assert _dask_facts(hub, user, "--nodelist=")["worker_nodes"] == [node]
    jobs_before = subprocess.run(
        ["squeue", "--noheader", f"--user={user}", "--format=%i %N"], capture_output=True, text=True
    ).stdout
    restore_node(node)
    began, began_wall = time.monotonic(), time.time()
    if failure == "crash":
        _crash(node)
    elif failure == "cut-link":
        _link(node, "down")
    else:
        subprocess.run(
            ["scontrol", "update", f"nodename={node}", "state=down", "reason=factorylab-test"],
            check=True,
        )
    assert wait_gone(hub, user, SLURMD_TIMEOUT + 10 + STEADY_POLL + 30), "the hub still shows it"
    noticed = time.monotonic() - began
    if failure != "scontrol-down":  # the hub's own verdict: server silent, node not responding
        slurm_after = _down_since(node, 2 * SLURMD_TIMEOUT) - began_wall
        own = f"Session job {job_id} of {user}: no answer" in HUB_LOG.read_text()
        print(
            f"{failure} of {node}: the hub marked the session stopped after {noticed:.1f} s "
            f"({'its own verdict' if own else 'Slurm first'}); Slurm marked the node down "
            f"after {slurm_after:.1f} s"
        )
        assert noticed <= SLURMD_TIMEOUT + STEADY_POLL
        assert own or slurm_after <= noticed + 1, "neither the hub nor Slurm decided"
    else:  # the job ends at once; the silent server makes the hub poll Slurm each second
        print(f"{failure} of {node}: the hub marked the session stopped after {noticed:.1f} s")
        assert noticed <= 5 + 2 + 5  # poll interval, the knock's timeout, a poll
    next_page_says(user, f"its node ({node}) failed")
    left = _left_in_queue(user, 60)  # a job the hub cancelled completes when Slurm gives up
    assert not left, f"before: {jobs_before}; left after the failure: {left}"
    orphans = set()
    if failure == "cut-link":  # what the cut-off node still runs, then mend and resume it
        orphans = set(run_on_node(node, ["pgrep", "-u", user]).stdout.split())
        assert orphans, f"the session's processes on {node} died with its link"
        _link(node, "up")
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], check=True)
    # the next start succeeds: elsewhere while the failed node is down (an admin's down
    # lasts only until the node's slurmd registers again: ReturnToService=2)
    assert hub.start(user, {"partition": "cpu"})["ready"]
    if failure == "crash":  # still down (a mended link is resumed above)
        assert job_node(job_id_of(user)) not in ("", node)
    # Slurm does not ping a node it set down: it learns what a mended node still runs
    # when the node's slurmd registers (at Slurm's periodic registration request, about
    # every 20 ping cycles), and then kills the jobs it ended NODE_FAIL
    alive = _still_alive(node, orphans, 20 * SLURMD_TIMEOUT / 3 + 60)
    assert not alive, f"the failed session's processes {alive} still run on {node}"
