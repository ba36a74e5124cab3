"""Every FactoryLab session the hub knows, as plain rows, read without asking Slurm.

The metrics gauges and the admin view both read these rows: a session's spawner (its
request, kernel activity, idle limit) joined with its job in the shared queue snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from spawners.slurm.queue import Snapshot

CUSTOM_PROFILE = "custom"


@dataclass(frozen=True)
class SessionRow:
    """One session: who, where, what it holds, and how long it has left or waited."""

    user: str
    server: str
    job_id: str
    state: str  # "pending", "running", "ending" or "unknown" (not in the snapshot)
    partition: str
    profile: str
    gpus: int
    gpu_type: str | None
    node: str
    reason: str
    queue_position: int | None
    time_left_seconds: int | None
    idle_seconds: float | None
    submitted_at: int


def profile_of(session: object) -> str:
    """The profile a session was started with (its accepted options outlive hub restarts)."""
    request = getattr(session, "session_request", None)
    accepted = getattr(session, "accepted_options", None) or {}
    chosen = (request.profile if request else None) or accepted.get("profile")
    return str(chosen) if chosen else CUSTOM_PROFILE


def session_row(
    user: str, server: str, session: object, snapshot: Snapshot, now: float | None = None
) -> SessionRow:
    """The row of one running or pending FactoryLab spawner (``session``)."""
    now = time.time() if now is None else now
    request = getattr(session, "session_request", None)
    job = snapshot.jobs.get(session.job_id)
    if job is None:
        state = "unknown"
    elif job.state == "PENDING":
        state = "pending"
    elif job.running:
        state = "running"
    else:
        state = "ending"
    activity = getattr(session, "kernel_activity", 0.0)
    running = job is not None and job.running
    gpus, gpu_type = (request.gpus, request.gpu_type) if request else (0, None)
    allocated = job.allocated_gpus if running else {}
    if allocated:  # what Slurm gave, which names the type even when the request did not
        gpus, gpu_type = sum(allocated.values()), "+".join(sorted(allocated)) or None
    return SessionRow(
        user=user,
        server=server,
        job_id=session.job_id,
        state=state,
        partition=(job.partition if job else "") or (request.partition if request else ""),
        profile=profile_of(session),
        gpus=gpus,
        gpu_type=gpu_type,
        node=job.batch_host if running else "",
        reason=job.reason if job is not None and state == "pending" else "",
        queue_position=snapshot.queue_position(session.job_id),
        time_left_seconds=max(0, int(job.end_time - now)) if running and job.end_time else None,
        idle_seconds=max(0.0, now - activity) if running and activity else None,
        submitted_at=getattr(session, "submitted_at", 0),
    )


def session_rows(users: Iterable[object], snapshot: Snapshot) -> Iterator[SessionRow]:
    """Rows for every server of ``users`` (JupyterHub ``User`` objects) that has a job."""
    now = time.time()
    for user in users:
        for name, wrapper in list(user.spawners.items()):
            session = getattr(wrapper, "slurm_session", lambda: None)()
            if session is not None and getattr(session, "job_id", ""):
                yield session_row(user.name, name, session, snapshot, now)


def hub_users() -> list[object]:
    """The running hub's users (those with a server are always loaded); none outside one."""
    from jupyterhub.app import JupyterHub

    if not JupyterHub.initialized():
        return []
    return list(JupyterHub.instance().users.values())
