"""The sentences users read about their session: why it waits, why it ended."""

from __future__ import annotations

import time

from spawners.site.units import format_walltime
from spawners.slurm.jobs import SlurmJob


def explain_reason(reason: str, partition: str, gpus: int) -> str:
    """Say why a job waits, in a sentence a course attendee understands.

    >>> explain_reason("Resources", "gpu", 1)
    'waiting for a free GPU in partition gpu'
    >>> explain_reason("Priority", "cpu", 0)
    'waiting behind jobs with higher priority in partition cpu'
    """
    if reason == "Resources":
        return (
            f"waiting for a free GPU in partition {partition}"
            if gpus
            else f"waiting for free CPUs or memory in partition {partition}"
        )
    known = {
        "Priority": f"waiting behind jobs with higher priority in partition {partition}",
        "None": "about to be scheduled",
        "BeginTime": "waiting for its start time",
        "Dependency": "waiting for another job to finish",
        "PartitionDown": f"partition {partition} is down; an administrator must bring it up",
        "PartitionInactive": f"partition {partition} is not accepting jobs right now",
        "ReqNodeNotAvail": f"the nodes of partition {partition} are unavailable (maintenance?)",
        "NodeDown": f"a node of partition {partition} is down",
        "Reservation": "waiting for its reservation to start",
        "JobHeldUser": "held by you (scontrol release to start it)",
        "JobHeldAdmin": "held by an administrator",
        "QOSMaxJobsPerUserLimit": "you already run as many jobs as your QOS allows",
        "QOSMaxGRESPerUser": "you already use as many GPUs as your QOS allows",
        "AssocGrpGRES": "your project already uses all the GPUs it may",
        "AssocMaxJobsLimit": "your project already runs as many jobs as it may",
        "AssocGrpCpuLimit": "your project already uses all the CPUs it may",
    }
    return known.get(reason, f"waiting (Slurm reason: {reason})")


def ordinal(n: int) -> str:
    """``1`` → ``1st``, ``2`` → ``2nd``, ``11`` → ``11th``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def pending_message(
    reason: str, partition: str, gpus: int, position: int | None, expected_start: int
) -> str:
    """The whole progress line for a pending session job."""
    reason_text = explain_reason(reason, partition, gpus)
    parts = [reason_text[:1].upper() + reason_text[1:]]
    if position:
        parts.append(f"{ordinal(position)} in line")
    if expected_start and expected_start > time.time():
        parts.append("expected start " + time.strftime("%H:%M %Z", time.localtime(expected_start)))
    return "; ".join(parts) + "."


def explain_ending(job: SlurmJob | None) -> str:
    """The sentence shown on the user's next page after their session ended.

    >>> from spawners.slurm.jobs import SlurmJob
    >>> job = SlurmJob("7", "factorylab", "u", "TIMEOUT", "TimeLimit", "gpu", "n1", "n1",
    ...                0, 0, 0, 0, 60, "")
    >>> explain_ending(job)[:81]
    'Your session (Slurm job 7) stopped because it reached its time limit of 01:00:00.'
    """
    if job is None:
        return "Your session stopped: Slurm no longer lists its job."
    head = f"Your session (Slurm job {job.job_id}) stopped because "
    limit = format_walltime(job.time_limit_minutes * 60) if job.time_limit_minutes else "its limit"
    why = {
        "TIMEOUT": f"it reached its time limit of {limit}. Save often, or ask for more time "
        "when you start the next one.",
        "OUT_OF_MEMORY": "it ran out of memory. Start the next one with more memory.",
        "NODE_FAIL": f"its node ({job.batch_host or job.nodes or 'unknown'}) failed. "
        "Unsaved work may be lost; start a new session.",
        "CANCELLED": "its job was cancelled outside FactoryLab (by an administrator or scancel).",
        "PREEMPTED": "a higher-priority job took its resources.",
        "BOOT_FAIL": "its node failed to boot.",
        "DEADLINE": "it reached its deadline.",
    }.get(job.state)
    if why is None:
        code = f" with exit code {job.exit_code}" if job.exit_code else ""
        why = f"its server exited{code} (state {job.state})."
    return head + why


#: What a job that ended before its server started did, in :func:`failure_sentence`.
EARLY_END = "ended before its server started"


def failure_sentence(
    job_id: str, job: SlurmJob | None, what: str, log_tail: list[str], job_log: str
) -> str:
    """``Your session job N <what> (state, exit code, reason).`` and its log tail.

    >>> failure_sentence("9", None, EARLY_END, [], "")
    'Your session job 9 ended before its server started; Slurm no longer lists it.'
    """
    if job is None:
        head = f"Your session job {job_id} {what}; Slurm no longer lists it."
    else:
        details = [f"state {job.state}"]
        if job.exit_code is not None and job.exit_code < 0:
            details.append(f"killed by signal {-job.exit_code}")
        elif job.exit_code is not None:
            details.append(f"exit code {job.exit_code}")
        if job.reason and job.reason != "None":
            details.append(f"reason {job.reason}")
        head = f"Your session job {job_id} {what} ({', '.join(details)})."
    if log_tail:
        return head + " Last lines of its log:\n" + "\n".join(log_tail)
    if job_log:
        return head + f" Its log, if it wrote one, is {job_log}."
    return head


def queue_timeout_sentence(waited: int, reason: str | None) -> str:
    """A session that waited longer than ``slurm.max_queue_wait`` was withdrawn."""
    return (
        f"Your session waited {format_walltime(waited)} in the queue "
        f"({reason or 'unknown reason'}) and was withdrawn. Try fewer "
        "resources or another partition, or come back later."
    )


def submit_refused_sentence(error: str, transient: bool) -> str:
    """Slurm did not take the session's job."""
    return "Slurm did not accept your session" + (
        " because the scheduler is not answering; try again in a minute."
        if transient
        else f": {error}"
    )


def kernel_ended_sentence(job_id: str, job: SlurmJob | None) -> str:
    """Why a kernel job is gone, for the notebook.

    >>> kernel_ended_sentence("12", None)
    'Your kernel job 12 ended; Slurm no longer lists it.'
    """
    if job is None:
        return f"Your kernel job {job_id} ended; Slurm no longer lists it."
    details = [f"state {job.state}"]
    if job.exit_code:
        details.append(f"exit code {job.exit_code}")
    if job.reason and job.reason != "None":
        details.append(f"reason {job.reason}")
    return f"Your kernel job {job_id} ended ({', '.join(details)})."


#: Why a session that was starting when the hub restarted is gone.
STARTING_AT_RESTART = (
    "Your session was still starting when the hub restarted, and was cancelled; start it again."
)
