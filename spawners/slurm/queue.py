"""One shared view of the queue for the whole hub.

Instead of one ``squeue -j`` per session and per poll (batchspawner), the hub keeps
a single snapshot of FactoryLab's jobs, refreshed by one ``squeue --json`` call per
interval. Every spawner's ``poll()``, start-wait and progress read that snapshot.
The interval is short while any spawn is pending or starting, or while a running
session's server has stopped answering (its node may be failing: Slurm's verdict then
reaches the user at once), and long when all is steady; scheduler errors keep the last
good snapshot and back off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from spawners.slurm.client import SlurmClient, SlurmError
from spawners.slurm.jobs import SlurmJob

log = logging.getLogger("factorylab.slurm.queue")


@dataclass(frozen=True)
class Snapshot:
    """The queue as seen at ``taken_at`` (monotonic seconds) and ``taken_wall`` (epoch)."""

    jobs: dict[str, SlurmJob] = field(default_factory=dict)
    taken_at: float = float("-inf")
    taken_wall: float = 0.0
    pending_order: dict[str, list[str]] = field(default_factory=dict)
    kernels: dict[str, SlurmJob] = field(default_factory=dict)

    def queue_position(self, job_id: str) -> int | None:
        """1-based place of a pending job among all pending jobs of its partition."""
        job = self.jobs.get(job_id) or self.kernels.get(job_id)
        if job is None or job.state != "PENDING":
            return None
        order = self.pending_order.get(job.partition, [])
        return order.index(job_id) + 1 if job_id in order else None


class JobMonitor:
    """Shared, adaptive poller of ``squeue --json``, filtered to one job name.

    Sessions' kernel jobs (named ``<job name>-kernel-<user>-<server>``) are kept apart,
    in :attr:`Snapshot.kernels`: they are no orphans of the session reconciler.

    :param client: the Slurm client.
    :param job_name: only jobs with this name are kept.
    :param active_interval: seconds between refreshes while anything is starting.
    :param steady_interval: seconds between refreshes otherwise.
    :param max_backoff: longest wait after repeated scheduler errors.
    """

    def __init__(
        self,
        client: SlurmClient,
        job_name: str,
        active_interval: float = 1.0,
        steady_interval: float = 30.0,
        max_backoff: float = 60.0,
    ):
        self.client = client
        self.job_name = job_name
        self.active_interval = active_interval
        self.steady_interval = steady_interval
        self.max_backoff = max_backoff
        self.snapshot = Snapshot()
        self.last_error: SlurmError | None = None
        self.error_since: float | None = None
        self.queries = 0
        self._starting: set[str] = set()
        self._claimed: set[str] = set()
        self._watched: dict[str, float] = {}  # job id -> monotonic end of its fast watch
        self._unclaimed_since: dict[str, float] = {}
        self.orphan_grace: float | None = None  # seconds; None: never cancel orphans
        self._wake = asyncio.Event()
        self._fresh = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._failures = 0

    # -- lifecycle ---------------------------------------------------------
    def ensure_running(self) -> None:
        """Start the background refresh loop if it is not running in this event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        """Stop the refresh loop."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- what spawners call ------------------------------------------------
    def mark_starting(self, job_id: str) -> None:
        """Poll fast until :meth:`mark_settled` for this job."""
        self.ensure_running()
        self._starting.add(job_id)
        self._wake.set()

    def mark_settled(self, job_id: str) -> None:
        """The job no longer needs fast polling."""
        self._starting.discard(job_id)

    def watch(self, job_id: str, seconds: float) -> bool:
        """Poll fast for ``seconds``: this running job's server stopped answering.

        Once per job, so a server that never answers again costs one watch, not a fast
        poll for the rest of its life. Returns whether a watch began.
        """
        if seconds <= 0 or job_id in self._watched:
            return False
        self.ensure_running()
        self._watched[job_id] = time.monotonic() + seconds
        self._wake.set()
        return True

    def keep_fresh(self, job_id: str, seconds: float) -> None:
        """Poll fast for the next ``seconds`` (renewed at each call): a session waits on
        this job (a kernel job, whose provisioner asks every few seconds)."""
        self.ensure_running()
        if self._watched.get(job_id, 0.0) <= time.monotonic():
            self._wake.set()  # a new watch: poll fast from now on, not after a steady wait
        self._watched[job_id] = time.monotonic() + seconds

    async def wait_ended(self, job_id: str, seconds: float) -> bool:
        """Wait up to ``seconds`` for the job to leave the queue or end; whether it did."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                snapshot = await self.fresh_snapshot(timeout=5)
            except TimeoutError:
                continue
            job = snapshot.jobs.get(job_id)
            if job is None or not job.active:
                return True
            await asyncio.sleep(0.5)
        return False

    def claim(self, job_id: str) -> None:
        """A spawner owns this job: it is not an orphan."""
        self._claimed.add(job_id)

    def release(self, job_id: str) -> None:
        """The spawner let go of this job."""
        self._claimed.discard(job_id)

    async def reconcile_orphans(self, snapshot: Snapshot) -> list[str]:
        """Cancel active jobs no spawner claims once they were seen for ``orphan_grace``."""
        if self.orphan_grace is None:
            return []
        now = time.monotonic()
        active = {job_id for job_id, job in snapshot.jobs.items() if job.active}
        for job_id in list(self._unclaimed_since):
            if job_id not in active or job_id in self._claimed:
                del self._unclaimed_since[job_id]
        cancelled = []
        for job_id in sorted(active - self._claimed):
            first_seen = self._unclaimed_since.setdefault(job_id, now)
            if first_seen == now:
                log.warning("FactoryLab job %s is not claimed by any session", job_id)
            if now - first_seen >= self.orphan_grace:
                job = snapshot.jobs[job_id]
                log.warning("Cancelling orphan job %s of %s", job_id, job.user)
                try:
                    await self.client.cancel(job_id, job.user)
                    cancelled.append(job_id)
                    del self._unclaimed_since[job_id]
                except SlurmError as exc:
                    log.error("Could not cancel orphan job %s: %s", job_id, exc)
        return cancelled

    @property
    def interval(self) -> float:
        """The current refresh interval, in seconds."""
        now = time.monotonic()
        watching = any(until > now for until in self._watched.values())
        return self.active_interval if self._starting or watching else self.steady_interval

    @property
    def healthy(self) -> bool:
        """Whether the last refresh succeeded."""
        return self.last_error is None

    async def fresh_snapshot(
        self, newer_than: float | None = None, timeout: float = 60
    ) -> Snapshot:
        """Wait for a snapshot taken after ``newer_than`` (monotonic; default: now).

        Concurrent callers share one scheduler query. Raises ``TimeoutError`` when the
        scheduler does not answer in time; the last good snapshot stays in place.
        """
        self.ensure_running()
        threshold = time.monotonic() if newer_than is None else newer_than
        async with self._fresh:
            self._wake.set()
            await asyncio.wait_for(
                self._fresh.wait_for(lambda: self.snapshot.taken_at > threshold), timeout
            )
            return self.snapshot

    async def current_snapshot(self, timeout: float = 60) -> Snapshot:
        """The latest snapshot, waiting only if none has been taken yet."""
        self.ensure_running()
        if self.snapshot.taken_at == float("-inf"):
            return await self.fresh_snapshot(newer_than=float("-inf"), timeout=timeout)
        return self.snapshot

    # -- the loop ------------------------------------------------------------
    async def refresh(self) -> Snapshot:
        """Query the scheduler once and publish the result."""
        started = time.monotonic()
        self.queries += 1
        jobs = await self.client.queue()
        kernels = f"{self.job_name}-kernel-"
        pending: dict[str, list[SlurmJob]] = {}
        for job in jobs:
            if job.state == "PENDING":
                for partition in job.partition.split(","):
                    pending.setdefault(partition, []).append(job)
        snapshot = Snapshot(
            jobs={job.job_id: job for job in jobs if job.name == self.job_name},
            kernels={job.job_id: job for job in jobs if job.name.startswith(kernels)},
            taken_at=started,
            taken_wall=time.time(),
            pending_order={
                partition: [
                    j.job_id for j in sorted(queue, key=lambda j: (-j.priority, j.submit_time))
                ]
                for partition, queue in pending.items()
            },
        )
        self._watched = {
            job_id: until
            for job_id, until in self._watched.items()
            if job_id in snapshot.jobs or job_id in snapshot.kernels
        }
        async with self._fresh:
            self.snapshot = snapshot
            self._fresh.notify_all()
        return snapshot

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                snapshot = await self.refresh()
                await self.reconcile_orphans(snapshot)
                if self.last_error is not None:
                    log.info("Slurm answers again after %s", self.last_error)
                self.last_error, self.error_since, self._failures = None, None, 0
                wait = self.interval
            except SlurmError as exc:
                self._failures += 1
                self.last_error = exc
                self.error_since = self.error_since or time.monotonic()
                wait = min(self.max_backoff, self.active_interval * 2**self._failures)
                log.warning("squeue failed (%s); retrying in %.0f s", exc, wait)
            except Exception:  # never let the shared loop die
                log.exception("unexpected error in the job monitor")
                wait = self.steady_interval
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
                woken_early = True
            except TimeoutError:
                woken_early = False
            if woken_early and self._failures:
                # Callers asking for fresh snapshots during an outage must not turn the
                # backoff into a busy loop; a full backoff wait needs no extra pause.
                await asyncio.sleep(min(wait, self.active_interval))
