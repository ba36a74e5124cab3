"""``factorylab doctor --dask``: a Dask worker on one node reaches a scheduler on another.

Two jobs of the sample user in the site's default image (``templates/doctor_dask.py``):
a scheduler on one node and a worker on another, with mutual TLS as a session's Dask
has. They meet through a private folder in the user's home (so the home must be
shared too), and the scheduler reports to the doctor which nodes' workers joined.
"""

from __future__ import annotations

import json
import shlex
from importlib import resources

from spawners.probes import Probe, sbatch_lines
from spawners.session.containers import container_prefix
from spawners.site import Site

#: What the scheduler job reports.
REPORT_FIELDS = {"nonce": str, "scheduler_node": str, "worker_nodes": list}


def pick_nodes(partitions: list[str], nodes: list[dict]) -> tuple[str, str, str] | None:
    """The first site partition with two nodes, and two of them: (partition, a, b).

    >>> pick_nodes(["gpu", "cpu"], [{"name": "c2", "partitions": ["cpu"]},
    ...     {"name": "c1", "partitions": ["cpu", "gpu"]}])
    ('cpu', 'c1', 'c2')
    >>> pick_nodes(["cpu"], [{"name": "c1", "partitions": ["cpu"]}]) is None
    True
    """
    for partition in partitions:
        names = sorted(n["name"] for n in nodes if partition in (n.get("partitions") or []))
        if len(names) >= 2:
            return partition, names[0], names[1]
    return None


def job_script(site: Site, probe: Probe, role: str, share: str, report_to: tuple[str, int]) -> str:
    """The batch script of the scheduler's (``role``) or the worker's job."""
    image = site.images[site.defaults.image]
    python = [*container_prefix(image.apptainer, image.binds, 0), f"{image.venv}/bin/python"]
    settings = {
        "role": role,
        "share": share,
        "nonce": probe.nonce,
        "report_host": report_to[0],
        "report_port": report_to[1],
    }
    program = resources.files("spawners").joinpath("templates/doctor_dask.py").read_text()
    return "\n".join(
        [
            "#!/bin/bash",
            *sbatch_lines(site, probe.partition, probe.node),
            f"exec {shlex.join(python)} -I - <<'FACTORYLAB_DOCTOR'",
            f"PROBE = __import__('json').loads({json.dumps(settings)!r})",
            program,
            "FACTORYLAB_DOCTOR",
            "",
        ]
    )


def report_line(
    scheduler_node: str, worker_node: str, report: dict | None
) -> tuple[str, bool, str]:
    """``(name, ok, detail)`` for what the scheduler reported (None: nothing came)."""
    name = f"dask {worker_node}->{scheduler_node}"
    if report is None:
        return (
            name,
            False,
            "no report from the scheduler's job: it did not run, or could not reach the "
            "doctor; see squeue",
        )
    if worker_node in report["worker_nodes"]:
        return (name, True, f"a worker on {worker_node} joined a scheduler on {scheduler_node}")
    why = report.get("error") or "no worker joined"
    return (
        name,
        False,
        f"a worker on {worker_node} did not join the scheduler on {scheduler_node} ({why}); "
        "let the compute nodes reach each other's ports 1024-65535",
    )
