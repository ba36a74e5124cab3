"""`make down` stops everything `make up` started; `make up` brings it back.

Named to run last: it takes the cluster down and up again.
"""

import socket
import subprocess
from pathlib import Path

from ..unit.conftest import REPO

DAEMONS = ("munge", "mariadb", "slurmdbd", "slurmctld", "slurmd", "proxy", "hub")
PORTS = (8000, 8001, 8081, 6817, 6818, 6819)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _running(name: str) -> bool:
    status = subprocess.run(
        ["/usr/local/sbin/factorylab-service", "status", name], capture_output=True
    )
    return status.returncode == 0


def test_make_down_stops_everything_and_up_restores_it(hub):
    down = subprocess.run(
        ["make", "-s", "down"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert down.returncode == 0, down.stderr
    try:
        assert not [name for name in DAEMONS if _running(name)]
        assert not [port for port in PORTS if _listening(port)]
        assert not any(Path("/run/factorylab").glob("*.pid"))
    finally:
        up = subprocess.run(
            ["make", "-s", "up"], cwd=REPO, capture_output=True, text=True, timeout=600
        )
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    assert all(_running(name) for name in DAEMONS)
    hub.wait_until_up()
    assert hub.api("GET", "/").status_code == 200
