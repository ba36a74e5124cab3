"""The demo cluster's compute nodes: network, UTS and mount namespaces of this machine
(ansible/roles/nodes). Commands run inside a node through ``factorylab-node NAME
--exec``, which enters the namespaces of the node's own supervisord."""

from __future__ import annotations

import socket
import subprocess

NODE_TOOL = "/usr/local/sbin/factorylab-node"
LOGIN_ADDRESS = "10.213.0.1"


def compute_nodes() -> list[str]:
    """The compute nodes Slurm knows, in order (c01, c02, …)."""
    out = subprocess.run(
        ["sinfo", "--noheader", "--Node", "--format=%N"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return sorted(set(out.split()))


def gpu_nodes() -> dict[str, str]:
    """The GPU nodes of partition gpu and their GPUs as Slurm's gres, e.g.
    ``{"c01": "gpu:h100:4", "c02": "gpu:a100:2"}`` (without a socket suffix ``(S:0)``)."""
    out = subprocess.run(
        ["sinfo", "--noheader", "--Node", "--partition=gpu", "--format=%N %G"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    rows = (line.split() for line in out.splitlines() if line.strip())
    return {node: gres.split("(")[0] for node, gres in rows}


def node_address(node: str) -> str:
    """The node's address on the cluster network (from /etc/hosts, as the hub sees it)."""
    return socket.gethostbyname(node)


def run_on_node(
    node: str, argv: list[str], user: str | None = None, timeout: float = 120, **kwargs
) -> subprocess.CompletedProcess:
    """Run ``argv`` inside ``node`` (as ``user``, or root), capturing text output."""
    prefix = ["runuser", "-u", user, "--"] if user else []
    return subprocess.run(
        [NODE_TOOL, node, "--exec", *prefix, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def node_service_running(node: str, name: str) -> bool:
    """Whether program factorylab-NAME runs under the node's own supervisord."""
    return run_on_node(node, ["supervisorctl", "status", f"factorylab-{name}"]).returncode == 0


def job_node(job_id: str) -> str:
    """The node a job runs on (empty while it waits)."""
    return subprocess.run(
        ["squeue", "--noheader", "--jobs", str(job_id), "--format=%N"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
