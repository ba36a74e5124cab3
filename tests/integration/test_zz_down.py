"""`make down` stops everything `make up` started; `make up` brings it back.

Marked ``last`` (conftest.py runs such tests after all others, whatever their file
names): it takes the cluster down, and brings it back up even when it fails.
"""

import socket
import subprocess

import pytest

from ..support.services import running
from ..unit.conftest import REPO

pytestmark = pytest.mark.last

DAEMONS = ("munge", "mariadb", "slurmdbd", "slurmctld", "slurmd", "proxy", "hub")
PORTS = (8000, 8001, 8081, 6817, 6818, 6819)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(900)  # make down (120 s) and make up (600 s)
def test_make_down_stops_everything_and_up_restores_it(hub):
    down = subprocess.run(
        ["make", "-s", "down"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert down.returncode == 0, down.stderr
    try:
        assert not [name for name in DAEMONS if running(name)]
        assert not [port for port in PORTS if _listening(port)]
        # the hub's managed service went with it (stopped as a process group or cgroup)
        culler = subprocess.run(["pgrep", "-f", "jupyterhub_idle_culler"], capture_output=True)
        assert culler.returncode == 1, "the idle culler outlived make down"
    finally:
        up = subprocess.run(
            ["make", "-s", "up"], cwd=REPO, capture_output=True, text=True, timeout=600
        )
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    assert all(running(name) for name in DAEMONS)
    hub.wait_until_up()
    assert hub.api("GET", "/").status_code == 200
