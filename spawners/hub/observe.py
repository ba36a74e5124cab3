"""What a session's life tells the operator: metric updates and event-log lines.

The spawner, the options hook and the session endpoints call these at each step of a
session; each call updates :mod:`spawners.hub.metrics` and writes one line of
:mod:`spawners.hub.events`. ``session`` is a FactoryLab Slurm spawner.
"""

from __future__ import annotations

import functools
import logging
import time

from spawners.hub import events, metrics
from spawners.hub.census import profile_of
from spawners.slurm.jobs import SlurmJob

log = logging.getLogger("factorylab.observe")


def never_raises(function):
    """Observing a session must never break it: log an error instead of raising."""

    @functools.wraps(function)
    def guarded(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception:
            log.exception("FactoryLab could not record %s", function.__name__)
            return None

    return guarded


def _labels(session, job: SlurmJob | None = None) -> tuple[str, str]:
    request = getattr(session, "session_request", None)
    partition = (job.partition if job else "") or (request.partition if request else "")
    return partition or "unknown", profile_of(session)


def _record(event: str, session, job: SlurmJob | None = None, **fields: object) -> None:
    submitted = getattr(session, "submitted_at", 0)
    events.record(
        event,
        user=session.user.name,
        server=session.name,
        job=session.job_id or None,
        node=(job.batch_host or None) if job is not None else None,
        seconds=round(time.time() - submitted, 1) if submitted else None,
        **fields,
    )


@never_raises
def starting(session) -> None:
    """A new start begins: forget what the last job's start-wait saw."""
    session.observed_job = None


@never_raises
def submitted(session) -> None:
    """The session's job was accepted by ``sbatch``."""
    partition, profile = _labels(session)
    session.observed_job = None
    _record("submitted", session, partition=partition, profile=profile)


@never_raises
def job_seen(session, job: SlurmJob | None) -> None:
    """The start-wait saw the job in a snapshot: log a new pending reason, or the start."""
    if job is None:
        return
    last = getattr(session, "observed_job", None)
    if job.state == "PENDING" and (last is None or last.reason != job.reason):
        _record("pending_reason_changed", session, job, reason=job.reason)
    elif job.running and (last is None or not last.running):
        _record("running", session, job, queue_wait_seconds=_queue_wait(job))
    session.observed_job = job


def _queue_wait(job: SlurmJob) -> int | None:
    if job.start_time and job.submit_time and job.start_time >= job.submit_time:
        return job.start_time - job.submit_time
    return None


@never_raises
def ready(session, job: SlurmJob) -> None:
    """The session's server answers: count both spawn timings."""
    partition, profile = _labels(session, job)
    wait = _queue_wait(job)
    if wait is not None:
        metrics.SPAWN_QUEUE_WAIT.labels(partition, profile).observe(wait)
    if job.start_time:
        start = max(0.0, time.time() - job.start_time)
        metrics.SPAWN_SERVER_START.labels(partition, profile).observe(start)
    if getattr(session, "observed_job", None) is None or not session.observed_job.running:
        job_seen(session, job)
    _record("ready", session, job)


@never_raises
def failed(session, cause: str, message: str) -> None:
    """The spawn failed after submission was attempted; ``message`` is the user's sentence."""
    cause = cause if cause in metrics.FAILURE_CAUSES else "error"
    metrics.SPAWN_FAILURES.labels(cause).inc()
    session.stop_recorded_for = session.job_id  # its end is this failure, not a later stop
    _record("failed", session, getattr(session, "observed_job", None), cause=cause, message=message)


@never_raises
def stopped(session, cause: str) -> None:
    """The session's job is gone: ``cause`` is ``requested``, ``culled``, or how it ended.

    Recorded once per job, however many paths (poll, stop) notice the end.
    """
    if not session.job_id or getattr(session, "stop_recorded_for", "") == session.job_id:
        return
    session.stop_recorded_for = session.job_id
    if getattr(session, "cull_requested_for", "") == session.job_id:
        cause = "culled"
    _record("stopped", session, getattr(session, "observed_job", None), cause=cause)


@never_raises
def culled(session, idle_seconds: float) -> None:
    """The idle culler is about to stop the session (counted once per job)."""
    if getattr(session, "cull_requested_for", "") == session.job_id:
        return
    metrics.CULLS.labels("idle").inc()
    session.cull_requested_for = session.job_id
    _record("culled", session, None, cause="idle", idle_seconds=round(idle_seconds))


@never_raises
def extended(session, result: str, by_seconds: int) -> None:
    """A request to extend the session's time: ``ok``, ``refused`` or ``failed``."""
    metrics.EXTENSIONS.labels(result).inc()
    if result == "ok":
        _record("extended", session, None, by_seconds=by_seconds)


@never_raises
def refused(field: str) -> None:
    """A session request was refused before submission (no job, so no event line)."""
    metrics.REFUSALS.labels(metrics.refusal_field(field)).inc()
