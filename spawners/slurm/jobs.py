"""Slurm jobs as records: one job of ``squeue --json``, parsed, with the states it can be in."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Slurm job states in which a session job may still become or be a running server.
ACTIVE_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED"}
)


@dataclass(frozen=True)
class SlurmJob:
    """One job from ``squeue --json``, reduced to what FactoryLab uses."""

    job_id: str
    name: str
    user: str
    state: str
    reason: str
    partition: str
    batch_host: str
    nodes: str
    exit_code: int | None
    submit_time: int
    start_time: int
    end_time: int
    time_limit_minutes: int | None
    standard_output: str
    priority: int = 0
    gres_detail: tuple[str, ...] = ()
    comment: str = ""
    account: str = ""

    @property
    def allocated_gpus(self) -> dict[str, int]:
        """GPUs Slurm allocated, by type (``""`` if untyped), from ``gres_detail``.

        >>> job = SlurmJob.from_json({"gres_detail": ["gpu:h100:2(IDX:0-1)", "gpu:1(IDX:0)"]})
        >>> job.allocated_gpus
        {'h100': 2, '': 1}
        """
        found: dict[str, int] = {}
        for entry in self.gres_detail:
            match = _GPU_GRES.match(entry)
            if match:
                kind = match.group(1) or ""
                found[kind] = found.get(kind, 0) + int(match.group(2))
        return found

    @property
    def active(self) -> bool:
        """Whether the job is pending or running (not yet in a final state)."""
        return self.state in ACTIVE_STATES

    @property
    def running(self) -> bool:
        """Whether the job's batch script is executing on a node."""
        return self.state == "RUNNING"

    @classmethod
    def from_json(cls, raw: dict) -> SlurmJob:
        """Build from one element of ``squeue --json``'s ``jobs`` list (openapi v0.0.38)."""
        state = raw.get("job_state") or "UNKNOWN"
        if isinstance(state, list):  # newer openapi versions give a list of flags
            state = state[0] if state else "UNKNOWN"
        exit_code = raw.get("exit_code")
        if isinstance(exit_code, dict):  # newer openapi: {"status": ..., "return_code": ...}
            exit_code = exit_code.get("return_code")
        elif isinstance(exit_code, int):  # openapi v0.0.38: a raw wait status
            exit_code = _from_wait_status(exit_code)
        time_limit = raw.get("time_limit")
        if isinstance(time_limit, dict):
            time_limit = time_limit.get("number") if time_limit.get("set") else None
        return cls(
            job_id=str(raw.get("job_id", "")),
            name=raw.get("name") or "",
            user=raw.get("user_name") or "",
            state=str(state),
            reason=raw.get("state_reason") or "",
            partition=raw.get("partition") or "",
            batch_host=raw.get("batch_host") or "",
            nodes=raw.get("nodes") or "",
            exit_code=exit_code if isinstance(exit_code, int) else None,
            submit_time=_epoch(raw.get("submit_time")),
            start_time=_epoch(raw.get("start_time")),
            end_time=_epoch(raw.get("end_time")),
            time_limit_minutes=time_limit if isinstance(time_limit, int) else None,
            standard_output=raw.get("standard_output") or "",
            priority=_epoch(raw.get("priority")),
            gres_detail=tuple(str(g) for g in raw.get("gres_detail") or () if isinstance(g, str)),
            comment=str(raw.get("comment") or ""),
            account=str(raw.get("account") or ""),
        )


_GPU_GRES = re.compile(r"^gpu(?::([A-Za-z0-9_.-]+))?:(\d+)")


def _from_wait_status(status: int) -> int:
    """A wait status as Slurm 22.05 reports it → exit code, or -signal if killed."""
    signal = status & 0x7F
    return -signal if signal else (status >> 8) & 0xFF


def _epoch(value: object) -> int:
    if isinstance(value, dict):
        value = value.get("number", 0)
    return value if isinstance(value, int) else 0
