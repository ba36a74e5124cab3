"""FactoryLab's Prometheus series, served by the hub's own ``/hub/metrics``.

They live in prometheus_client's default registry, which JupyterHub already serves
behind the ``read:metrics`` scope. Counters and histograms are updated as things
happen (:mod:`spawners.hub.observe`); the gauges are computed when Prometheus scrapes,
from the hub's shared queue snapshot and its spawners, so a scrape costs the scheduler
nothing. No user name or job id is ever a label: cardinality is bounded by the site's
partitions, profiles, GPU types and the fixed label values below.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from spawners.hub.census import SessionRow
from spawners.session.request import FIELDS
from spawners.slurm.queue import JobMonitor

#: A GPU whose kernels were quiet this long counts as idle.
IDLE_GPU_SECONDS = 300
#: Spawn timings reach hours: a busy GPU partition queues that long.
WAIT_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
START_BUCKETS = (0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)

#: The causes a failed spawn is counted under (SessionError reasons, plus "error").
FAILURE_CAUSES = (
    "slurm-refused",
    "slurm-unavailable",
    "job-ended",
    "job-not-running",
    "queue-timeout",
    "server-start-timeout",
    "unresolvable-node",
    "foreign-target",
    "error",
)
CULL_CAUSES = ("idle",)
#: Slurm's commonest reasons to wait, reported (at 0) even when nobody waits for them.
PENDING_REASONS = ("Resources", "Priority")
EXTENSION_RESULTS = ("ok", "refused", "failed")
SLURM_VERBS = ("sbatch", "scancel", "squeue", "sinfo", "scontrol", "sacctmgr", "factorylab-extend")
SLURM_RESULTS = ("ok", "error", "timeout")

SPAWN_QUEUE_WAIT = Histogram(
    "factorylab_spawn_queue_wait_seconds",
    "Seconds a session job waited in Slurm's queue, from submission to running.",
    ["partition", "profile"],
    buckets=WAIT_BUCKETS,
)
SPAWN_SERVER_START = Histogram(
    "factorylab_spawn_server_start_seconds",
    "Seconds from a session job's start on its node until its server was ready.",
    ["partition", "profile"],
    buckets=START_BUCKETS,
)
SPAWN_FAILURES = Counter(
    "factorylab_spawn_failures",
    "Session starts that failed after the form was accepted, by cause.",
    ["cause"],
)
REFUSALS = Counter(
    "factorylab_refusals",
    "Session requests refused before submission, by the form field at fault.",
    ["field"],
)
CULLS = Counter("factorylab_culls", "Sessions stopped by the idle culler, by cause.", ["cause"])
EXTENSIONS = Counter(
    "factorylab_extensions", "Requests to extend a session's time, by result.", ["result"]
)
SLURM_COMMANDS = Counter(
    "factorylab_slurm_commands",
    "Slurm commands the hub ran, by command and result (ok, error, timeout).",
    ["verb", "result"],
)
SLURM_COMMAND_SECONDS = Histogram(
    "factorylab_slurm_command_seconds",
    "Seconds each Slurm command the hub ran took, by command.",
    ["verb"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
#: Known label values start at 0, so that dashboards and rates see them before any event.
for _cause in FAILURE_CAUSES:
    SPAWN_FAILURES.labels(_cause)
for _field in (*FIELDS, "other"):
    REFUSALS.labels(_field)
for _cause in CULL_CAUSES:
    CULLS.labels(_cause)
for _result in EXTENSION_RESULTS:
    EXTENSIONS.labels(_result)
for _verb in SLURM_VERBS:
    for _result in SLURM_RESULTS:
        SLURM_COMMANDS.labels(_verb, _result)


def start_series(partition_profiles: Iterable[tuple[str, str]]) -> None:
    """Create both spawn histograms' series at 0 for each site (partition, profile).

    A series that first appears with a spawn already counted hides that spawn from
    ``rate()`` and ``increase()``; one that starts at 0 does not.
    """
    for partition, profile in partition_profiles:
        SPAWN_QUEUE_WAIT.labels(partition, profile)
        SPAWN_SERVER_START.labels(partition, profile)


def refusal_field(field: str) -> str:
    """The label for a refused field: one of the form's fields, or ``other``."""
    return field if field in FIELDS else "other"


def count_slurm_command(verb: str, result: str, seconds: float) -> None:
    """A :data:`~spawners.slurm.client.CommandObserver` that counts into the series above."""
    verb = verb if verb in SLURM_VERBS else "other"
    SLURM_COMMANDS.labels(verb, result).inc()
    SLURM_COMMAND_SECONDS.labels(verb).observe(seconds)


class SnapshotCollector(Collector):
    """The gauges, computed at scrape time from the queue snapshot and the hub's sessions.

    :param sessions: returns the hub's current session rows (no scheduler call).
    :param monitor: returns the hub's job monitor (None: there is none); a scrape starts
        its refresh loop if it is not running, so the scheduler gauges appear after a
        hub restart even before anyone has a session.
    """

    def __init__(
        self,
        sessions: Callable[[], Iterable[SessionRow]],
        monitor: Callable[[], JobMonitor | None],
    ):
        self.sessions = sessions
        self.monitor = monitor

    def describe(self):
        """No up-front description: the gauges depend on the hub's state."""
        return []

    def collect(self):
        """One family per gauge; the labelled ones carry only the label sets seen now."""
        now = time.time()
        states = GaugeMetricFamily(
            "factorylab_sessions",
            "FactoryLab sessions with a Slurm job, by state (pending, running), partition "
            "and profile.",
            labels=["state", "partition", "profile"],
        )
        pending = GaugeMetricFamily(
            "factorylab_pending_sessions",
            "Sessions waiting in Slurm's queue, by Slurm's reason code.",
            labels=["reason"],
        )
        held = GaugeMetricFamily(
            "factorylab_gpus_held",
            "GPUs allocated to running FactoryLab sessions.",
            labels=["partition", "gpu_type"],
        )
        idle = GaugeMetricFamily(
            "factorylab_gpus_idle",
            f"GPUs held by running sessions whose kernels have been idle for more than "
            f"{IDLE_GPU_SECONDS // 60} minutes.",
            labels=["partition"],
        )
        by_state, by_gpu, by_idle = Tally(), Tally(), Tally()
        by_reason = Tally(dict.fromkeys(PENDING_REASONS, 0))
        for row in self.sessions():
            if row.state not in ("pending", "running"):
                continue
            by_state[(row.state, row.partition, row.profile)] += 1
            if row.state == "pending":
                by_reason[row.reason or "None"] += 1
            elif row.gpus:
                by_gpu[(row.partition, row.gpu_type or "any")] += row.gpus
                by_idle[row.partition] += 0
                if row.idle_seconds is not None and row.idle_seconds > IDLE_GPU_SECONDS:
                    by_idle[row.partition] += row.gpus
        for family, tally in ((states, by_state), (pending, by_reason), (held, by_gpu)):
            for labels, value in sorted(tally.items()):
                family.add_metric(list(labels) if isinstance(labels, tuple) else [labels], value)
        for partition, value in sorted(by_idle.items()):
            idle.add_metric([partition], value)
        yield from (states, pending, held, idle)
        yield from self._scheduler(now)

    def _scheduler(self, now: float):
        monitor = self.monitor()
        if monitor is not None:
            monitor.ensure_running()
        age = GaugeMetricFamily(
            "factorylab_queue_snapshot_age_seconds",
            "Seconds since the hub's shared squeue snapshot was taken.",
        )
        up = GaugeMetricFamily(
            "factorylab_scheduler_up",
            "1 if the hub's last squeue succeeded, 0 if Slurm did not answer it.",
        )
        taken = monitor.snapshot.taken_wall if monitor is not None else 0.0
        if taken:  # no sample before the hub has asked Slurm: not asked is not down
            age.add_metric([], now - taken)
            up.add_metric([], 1 if monitor.healthy else 0)
        yield from (age, up)


_registered: list[SnapshotCollector] = []


def register(collector: SnapshotCollector, registry=REGISTRY) -> None:
    """Serve ``collector`` from ``registry`` (once per process; a reload replaces it)."""
    for old in _registered:
        registry.unregister(old)
    _registered[:] = [collector]
    registry.register(collector)
