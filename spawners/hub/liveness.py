"""Listen harder when a running session's server stops answering: its node may be failing.

Slurm alone decides that a node failed: ``SlurmdTimeout`` after the node's last word, at
one of its ping cycles. The hub learns it from its next ``squeue`` snapshot, which on a
steady hub is up to ``poll_interval_steady`` later. So each ``poll()`` of a running
session knocks on its server's port (a TCP connection, closed at once; no request
reaches the server). A refused or silent port starts a watch: the job monitor polls at
its active interval for ``slurm.node_failure_watch`` seconds, and Slurm's verdict reaches
the user within a second. The cost is one ``squeue`` a second, only while something is
wrong and at most once per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from spawners.slurm.jobs import SlurmJob
from spawners.slurm.queue import JobMonitor

log = logging.getLogger("factorylab.hub.liveness")


async def answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether something accepts a TCP connection at ``host:port`` within ``timeout``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def watch_if_silent(
    monitor: JobMonitor, job: SlurmJob, host: str, port: int, seconds: float
) -> bool:
    """Start a fast watch of ``job`` when its server at ``host:port`` does not answer.

    Only for a running job whose address is known, and only until its one watch began.
    Returns whether a watch began.
    """
    if seconds <= 0 or job.state != "RUNNING" or not host or not port:
        return False
    if monitor.was_watched(job.job_id) or await answers(host, port):
        return False
    if monitor.watch(job.job_id, seconds):
        log.warning(
            "Session job %s of %s on %s does not answer at %s:%s; polling Slurm fast for %.0f s",
            job.job_id,
            job.user,
            job.batch_host,
            host,
            port,
            seconds,
        )
        return True
    return False
