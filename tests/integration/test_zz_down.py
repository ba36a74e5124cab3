"""`make down` stops everything `make up` started; `make up NODES=N+1` brings it back, grown.

Marked ``last`` (conftest.py runs such tests after all others, whatever their file
names): it takes the cluster down, and brings it back up even when it fails. The
restore adds a compute node from scratch (network, keys, sshd, munge, slurmd, Slurm's
configuration), so the demo cluster is left one node larger; the next `make up` (NODES=2
by default) retires that node again.
"""

import os
import socket
import subprocess

import pytest

from ..support.nodes import LOGIN_ADDRESS, compute_nodes, node_address, node_service_running
from ..support.services import running
from ..unit.conftest import REPO

pytestmark = pytest.mark.last

NODES = compute_nodes()
# The login node's daemons; each compute node is one program (its own supervisord).
DAEMONS = (
    "munge",
    "mariadb",
    "slurmdbd",
    "slurmctld",
    *(f"node-{n}" for n in NODES),
    "proxy",
    "hub",
    # make test runs Prometheus (PROMETHEUS=true, which its make up runs inherit)
    *(("prometheus",) if os.environ.get("PROMETHEUS") == "true" else ()),
)
NODE_DAEMONS = ("sshd", "munge", "slurmd")
GROWN = f"c{len(NODES) + 1:02d}"  # the node make up NODES=N+1 adds
PORTS = [("127.0.0.1", p) for p in (8000, 8001, 6817, 6819)] + [(LOGIN_ADDRESS, 8081)]
PORTS += [("127.0.0.1", 9090)] if "prometheus" in DAEMONS else []
PORTS += [(node_address(node), port) for node in NODES for port in (22, 6818)]


def _listening(address: tuple[str, int]) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(address) == 0


@pytest.mark.skipif(len(NODES) >= 8, reason="the demo cluster has at most 8 nodes")
@pytest.mark.timeout(900)  # make down (120 s) and make up (600 s)
def test_make_down_stops_everything_and_up_brings_it_back_grown(hub):
    down = subprocess.run(
        ["make", "-s", "down"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert down.returncode == 0, down.stderr
    try:
        assert not [name for name in DAEMONS if running(name)]
        assert not [address for address in PORTS if _listening(address)]
        # the hub's managed service went with it (stopped as a process group or cgroup)
        culler = subprocess.run(["pgrep", "-f", "jupyterhub_idle_culler"], capture_output=True)
        assert culler.returncode == 1, "the idle culler outlived make down"
    finally:
        up = subprocess.run(
            ["make", "-s", "up", f"NODES={len(NODES) + 1}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    assert all(running(name) for name in DAEMONS)
    assert all(node_service_running(n, d) for n in NODES for d in NODE_DAEMONS)
    assert all(_listening(address) for address in PORTS)
    hub.wait_until_up()
    assert hub.api("GET", "/").status_code == 200
    # the new node is a host of its own that Slurm schedules onto
    assert compute_nodes() == [*NODES, GROWN]
    assert all(node_service_running(GROWN, d) for d in NODE_DAEMONS)
    ran = subprocess.run(
        [
            "sudo",
            "-u",
            "demo03",
            "srun",
            "--partition=cpu",
            f"--nodelist={GROWN}",
            "--time=1",
            "hostname",
        ],
        cwd="/tmp",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.stdout.strip() == GROWN, ran.stderr
