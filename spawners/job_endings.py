"""Why a session job is gone, in a sentence for its user."""

from __future__ import annotations

from .slurm_client import SlurmJob
from .units import format_walltime


def explain_ending(job: SlurmJob | None) -> str:
    """The sentence shown on the user's next page after their session ended.

    >>> from spawners.slurm_client import SlurmJob
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
