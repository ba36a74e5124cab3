"""Issue 14, 1: another user ran code as the session's user through its Dask scheduler.

The attack, as demo15 did it to demo14: read the scheduler's address (it is no secret),
then ``Client(address).run_on_scheduler(...)``. Each session's Dask now speaks mutual
TLS with certificates made for that session alone.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ..support.hub import proxied, run_in_kernel
from ..support.nodes import compute_nodes, node_address, run_on_node

VICTIM, ATTACKER = "demo14", "demo15"
BASE_PYTHON = "/opt/factorylab/envs/base/bin/python"

START_CLUSTER = """
import json, os
from dask_jobqueue import SLURMCluster
from distributed import Client
cluster = SLURMCluster()
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=180)
print(json.dumps({
    "scheduler": cluster.scheduler_address,
    "workers": sorted(client.scheduler_info()["workers"]),
    "uid": client.run_on_scheduler(os.getuid),
    "script": cluster.job_script(),
}))
"""

ATTACK = """
import json, os, sys
from distributed import Client
from distributed.security import Security
results = {}
target = sys.argv[1]
host_port = target.split("://", 1)[1]
proof = "/home/demo14/dask-attack-proof"  # the victim's home: shared by every node
for name, address, security in [
    ("tcp", "tcp://" + host_port, None),
    ("tls-own-cert", "tls://" + host_port, Security.temporary()),
]:
    try:
        client = Client(address, security=security, timeout=10)
        client.run_on_scheduler(lambda: open(proof, "w").write(str(os.getuid())))
        results[name] = "ran code"
        client.close()
    except Exception as exc:
        results[name] = "refused: " + type(exc).__name__
for path in sys.argv[2:]:
    try:
        open(path).read()
        results[path] = "read"
    except OSError as exc:
        results[path] = "refused: " + type(exc).__name__
print(json.dumps(results))
"""


def _attack(address: str, *paths: str) -> dict:
    """The attack, as the attacker would run it: on the node where the target listens."""
    host = address.split("://", 1)[1].rsplit(":", 1)[0]
    node = next(n for n in compute_nodes() if node_address(n) == host)
    result = run_on_node(
        node,
        [
            "env",
            "-i",
            f"HOME=/home/{ATTACKER}",
            "PATH=/usr/bin:/bin",
            BASE_PYTHON,
            "-c",
            ATTACK,
            address,
            *paths,
        ],
        user=ATTACKER,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(900)  # a spawn, a cluster start (240 s) and each attack (120 s)
def test_another_user_cannot_use_a_sessions_dask_cluster(hub, session):
    session(VICTIM, {"partition": "cpu"})
    token = hub.user_token(VICTIM)
    # one kernel for the cluster's lifetime
    response = proxied(hub, VICTIM, "api/kernels", token, method="POST", json={"name": "python3"})
    assert response.status_code == 201, response.text
    kernel_id = response.json()["id"]
    facts = json.loads(
        run_in_kernel(hub, VICTIM, token, START_CLUSTER, timeout=240, kernel_id=kernel_id)
    )
    tls_dir = Path(f"/home/{VICTIM}/.factorylab/servers/default/dask-tls")
    # the session's own client works, over TLS only
    assert facts["scheduler"].startswith("tls://"), facts
    assert facts["workers"] and all(w.startswith("tls://") for w in facts["workers"])
    assert f"--tls-ca-file {tls_dir}/ca.crt" in facts["script"]
    assert "--no-dashboard" in facts["script"]
    assert facts["uid"] == int(subprocess.check_output(["id", "-u", VICTIM]))
    assert tls_dir.owner() == VICTIM and (tls_dir.stat().st_mode & 0o777) == 0o700
    for item in tls_dir.iterdir():
        assert item.owner() == VICTIM and (item.stat().st_mode & 0o777) == 0o600, item

    # the attack, against the scheduler and a worker
    proof = Path(f"/home/{VICTIM}/dask-attack-proof")
    proof.unlink(missing_ok=True)
    for target in (facts["scheduler"], facts["workers"][0]):
        results = _attack(target, str(tls_dir / "session.key"), str(tls_dir / "ca.crt"))
        assert all(value.startswith("refused") for value in results.values()), results
    assert not proof.exists(), "the attacker ran code as the session's user"

    run_in_kernel(hub, VICTIM, token, "client.close(); cluster.close()", kernel_id=kernel_id)
