"""Time-left rules: what a running session's user is told about its end, and how far it
may be extended. Pure: the job record, the site and the user's limit come in."""

from __future__ import annotations

from spawners.site.model import Site
from spawners.site.units import format_walltime
from spawners.slurm.jobs import SlurmJob


def time_warning(site: Site, left: int) -> str | None:
    """The warning for ``left`` seconds to go, once it is below a warning threshold.

    >>> from spawners.site import parse_site
    >>> site = parse_site({"partitions": {"cpu": {}}, "images": {"base": {"venv": "/v"}}})
    >>> time_warning(site, 3600) is None, time_warning(site, 61)
    (True, 'Your session ends in 2 minutes. Save your work, or extend the session.')
    """
    passed = [mark for mark in site.walltime.warnings if left <= mark]
    if not passed:
        return None
    minutes = max(1, -(-left // 60))
    return f"Your session ends in {minutes} minute{'s' if minutes != 1 else ''}. Save your work" + (
        ", or extend the session." if site.walltime.allow_extend else "."
    )


def time_facts(site: Site, job: SlurmJob, max_walltime: int, now: float) -> dict:
    """Time left of a running ``job``, and the latest end an extension can reach."""
    left = max(0, job.end_time - int(now))
    reachable = job.start_time + max_walltime
    extendable = site.walltime.allow_extend and reachable > job.end_time
    return {
        "ends_at": job.end_time,
        "time_left_seconds": left,
        "time_limit": format_walltime((job.time_limit_minutes or 0) * 60),
        "extendable_until": reachable if extendable else None,
        "extend_by_seconds": min(site.walltime.extend_by, reachable - job.end_time)
        if extendable
        else 0,
        "warning": time_warning(site, left),
    }


def extension_refusal(site: Site, job: SlurmJob | None, by: int, max_walltime: int) -> str | None:
    """Why extending ``job`` by ``by`` seconds is beyond the policy (None: it is not)."""
    if not site.walltime.allow_extend:
        return "This site does not allow extending sessions."
    if by <= 0:
        return "by: an extension must be longer than zero."
    if job is None:
        return None
    limit = (job.time_limit_minutes or 0) * 60
    if limit + by <= max_walltime:
        return None
    room = max(0, max_walltime - limit)
    return (
        f"Sessions on partition {job.partition} may run {format_walltime(max_walltime)} in "
        f"all; this one has {format_walltime(limit)}, so it can be extended by "
        + (f"{format_walltime(room)} at most." if room else "nothing more.")
    )
