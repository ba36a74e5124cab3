"""Knock on a running session's server; tell a node failure in seconds, not minutes.

Slurm marks a silent node DOWN at the first ping cycle (every ``SlurmdTimeout/3``) that
finds the node's last word older than ``SlurmdTimeout`` at the cycle before; a healthy
node is pinged every other cycle, so that verdict comes ``SlurmdTimeout`` plus one to
three cycles after the failure. The hub then learns it from its next ``squeue``.

So each ``poll()`` of a running session knocks on its server's port (a TCP connection,
closed at once: no request reaches the server):

- the first knock left unanswered makes the job monitor poll at its active interval for
  ``slurm.node_failure_watch`` seconds, so Slurm's verdict reaches the user within a
  second. Once per job: a user who opens and closes their port cannot keep the hub
  polling the scheduler every second;
- once the server has not answered for ``slurm.node_silence_limit`` seconds (set to the
  site's ``SlurmdTimeout``; ``factorylab doctor`` checks it is not shorter) while Slurm
  reports its node not responding, the hub itself cancels the job and ends the session
  as lost with that node, as Slurm will at its next ping cycle or two.

A server that answers again restarts the count; a node that Slurm still hears from
never ends a session, however long its server is silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time

from spawners.session.messages import explain_ending
from spawners.site.model import Site
from spawners.slurm.jobs import SlurmJob
from spawners.slurm.queue import JobMonitor
from spawners.slurm.services import shared_cluster_state

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


class Liveness:
    """What the hub's knocks found of one session's server.

    :ivar silent_since: monotonic time of the first unanswered knock in a row, or None.
    :ivar lost_node: the node the session was lost with, once :meth:`lost` said so.
    """

    def __init__(self) -> None:
        self.silent_since: float | None = None
        self.lost_node = ""

    async def lost(
        self, site: Site, monitor: JobMonitor, job: SlurmJob, address: str
    ) -> str | None:
        """Knock once on ``address`` (``host:port``, kept in the spawner's state, so it
        survives a hub restart); the sentence for the user if it is lost with its node."""
        host, _, port = address.rpartition(":")
        if job.state != "RUNNING" or not host or not port.isdigit() or port == "0":
            return None
        if await answers(host, int(port)):
            self.silent_since = None
            return None
        now = time.monotonic()
        if self.silent_since is None:
            self.silent_since = now
            if monitor.watch(job.job_id, site.slurm.node_failure_watch):
                log.warning(
                    "Session job %s of %s on %s does not answer at %s:%s; polling Slurm fast",
                    job.job_id, job.user, job.batch_host, host, port,
                )  # fmt: skip
        limit = site.slurm.node_silence_limit
        if not limit or now - self.silent_since < limit:
            return None
        cluster = await shared_cluster_state(site).get()
        if cluster.error or job.batch_host not in cluster.silent_nodes:
            return None
        log.warning(
            "Session job %s of %s: no answer for %.0f s and Slurm has lost touch with %s; "
            "ending it as lost with its node",
            job.job_id, job.user, now - self.silent_since, job.batch_host,
        )  # fmt: skip
        self.lost_node = job.batch_host
        return explain_ending(dataclasses.replace(job, state="NODE_FAIL"))
