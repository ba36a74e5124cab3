"""What is free on the cluster right now, from one cached scheduler query per hub.

The spawn form shows free CPUs and GPUs per partition. All users share one
:class:`ClusterStateCache`: it runs ``sinfo --json`` (and, when reservations come
from Slurm, ``scontrol -o show reservation``) at most once per
``slurm.availability_interval``, and concurrent page views wait for the same query
instead of starting their own. A page view never queries the scheduler itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from spawners.slurm.client import SlurmClient, SlurmError
from spawners.slurm.partitions import PartitionLoad, node_silent, partition_loads
from spawners.slurm.reservations import Reservation, parse_reservations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterState:
    """One refresh: partitions, reservations, silent nodes, when, and what went wrong."""

    partitions: dict[str, PartitionLoad] = field(default_factory=dict)
    reservations: tuple[Reservation, ...] = ()
    taken_at: float = 0.0
    taken_wall: float = 0.0
    error: str | None = None
    silent_nodes: frozenset[str] = frozenset()  # not responding, or down


class ClusterStateCache:
    """One scheduler query per ``interval`` for the whole hub, shared by every caller."""

    def __init__(self, client: SlurmClient, interval: float, with_reservations: bool = True):
        self.client = client
        self.interval = interval
        self.with_reservations = with_reservations
        self.state = ClusterState()
        self.refreshes = 0
        self._inflight: asyncio.Future[ClusterState] | None = None

    async def get(self) -> ClusterState:
        """The cached state, refreshed first if it is older than ``interval``."""
        if self.state.taken_at and time.monotonic() - self.state.taken_at < self.interval:
            return self.state
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._inflight)

    async def _refresh(self) -> ClusterState:
        self.refreshes += 1
        now, wall = time.monotonic(), time.time()
        try:
            nodes = await self.client.nodes()
            reservations = (
                parse_reservations(await self.client.reservations())
                if self.with_reservations
                else []
            )
        except SlurmError as exc:
            log.warning("Cluster availability unknown: %s", exc)
            # Keep the last figures, say they are stale, and wait a full interval.
            self.state = ClusterState(
                self.state.partitions,
                self.state.reservations,
                now,
                wall,
                str(exc),
                self.state.silent_nodes,
            )
            return self.state
        silent = frozenset(str(node.get("name", "")) for node in nodes if node_silent(node))
        self.state = ClusterState(
            partition_loads(nodes), tuple(reservations), now, wall, silent_nodes=silent
        )
        return self.state
