"""Slurm's pending reasons in plain words, for the spawn page."""

from __future__ import annotations

import time


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
