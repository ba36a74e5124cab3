"""The rules of a course: who is in it, when its sessions run, what they ask Slurm for,
and what the course runner does on each of its ticks. Pure: the hub supplies the facts.
"""

from __future__ import annotations

import grp
import math
import pwd
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from spawners.site.course_sections import Course
from spawners.site.units import format_walltime

#: No course session is started with less than this left before the end (seconds).
MIN_SESSION = 120
#: After "Start all", the runner keeps starting missing members for this long (seconds):
#: long enough for a class of hundreds, paced, with queue waits.
START_ALL_WINDOW = 600


def utcnow() -> datetime:
    """Now, with a time zone (courses' times always have one)."""
    return datetime.now(UTC)


def group_members(group: str | None) -> frozenset[str]:
    """Users in Unix group ``group``, as a supplementary or as their primary group."""
    if not group:
        return frozenset()
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return frozenset()
    primary = {user.pw_name for user in pwd.getpwall() if user.pw_gid == entry.gr_gid}
    return frozenset(entry.gr_mem) | primary


def members_of(course: Course) -> list[str]:
    """Every member: the listed users and the users of the course's group."""
    return sorted(set(course.members) | group_members(course.group))


def is_member(course: Course, user: str) -> bool:
    """Whether ``user`` is in the course (listed, or in its group)."""
    return user in course.members or user in group_members(course.group)


def may_manage(course: Course, user: str, admin: bool) -> bool:
    """Admins manage every course; instructors manage their own."""
    return admin or user in course.instructors


def phase(course: Course, now: datetime) -> str:
    """``scheduled``, ``warming`` (pre-start), ``running`` or ``ended``."""
    if now >= course.ends_at:
        return "ended"
    if now >= course.starts_at:
        return "running"
    if now >= course.prestart_at:
        return "warming"
    return "scheduled"


def is_open(course: Course, now: datetime) -> bool:
    """Whether members' course sessions may run now (from the pre-start to the end)."""
    return phase(course, now) in ("warming", "running")


def closed_sentence(course: Course, now: datetime) -> str:
    """Why a course session cannot start now, for the member."""
    if phase(course, now) == "ended":
        return f"The course {course.title!r} ended at {course.ends_at.isoformat()}."
    return (
        f"The course {course.title!r} opens at {course.prestart_at.isoformat()}; "
        f"its sessions start then."
    )


def session_options(course: Course, now: datetime) -> dict[str, str]:
    """The user options of a member's course session started at ``now``.

    The session's walltime runs to the course's end (rounded down to Slurm's minutes),
    so the job ends with the course and the Lab's usual time-left warnings come first.
    """
    if isinstance(course.profile, str):
        options = {"profile": course.profile}
    else:
        options = {key: str(value) for key, value in course.profile.items()}
    seconds = max(60, math.floor((course.ends_at - now).total_seconds() / 60) * 60)
    options["walltime"] = format_walltime(seconds)
    if course.reservation:
        options["reservation"] = course.reservation
    return options


def course_material(course: Course, home: str, session_directory: str) -> dict[str, str] | None:
    """What the session's launcher pulls (nbgitpuller's merge rules), or None."""
    if not course.material:
        return None
    return {
        "repo": course.material,
        "branch": course.material_branch or "",
        "target": f"{home.rstrip('/')}/{course.folder}",
        "gitconfig": f"{session_directory}/gitconfig",
    }


def held_sentence(course: Course) -> str:
    """Why a member cannot start a course session its instructors stopped."""
    return (
        f"The instructors of {course.title!r} stopped its sessions; they start again "
        f"when an instructor presses Start all."
    )


def course_partition(course: Course, profiles: Mapping[str, object], default: str) -> str:
    """The partition the course's sessions run in (its profile's, or its request's)."""
    if isinstance(course.profile, str):
        return str(getattr(profiles.get(course.profile), "partition", default))
    return str(course.profile.get("partition", default))


def landing_path(course: Course) -> str:
    """Where in the Lab a member lands: the course's material, in a JupyterLab workspace
    of the course's own, so that what the member had open in other sessions never
    covers it, and what they open in the course is there when they come back."""
    target = f"{course.folder}/{course.open}" if course.open else course.folder
    return f"lab/workspaces/{course.name}/tree/{target}"


@dataclass(frozen=True)
class Control:
    """What the instructors asked of a course: stopped, or started by hand."""

    held: bool = False
    start_requested_at: float = 0.0

    def as_dict(self) -> dict:
        """For the course book's file and the API."""
        return {"held": self.held, "start_requested_at": self.start_requested_at}

    @classmethod
    def from_dict(cls, data: Mapping) -> Control:
        """From :meth:`as_dict`; anything odd reads as no request."""
        held = data.get("held") is True
        requested = data.get("start_requested_at")
        number = isinstance(requested, (int, float)) and not isinstance(requested, bool)
        return cls(held=held, start_requested_at=float(requested) if number else 0.0)


@dataclass(frozen=True)
class Tick:
    """What the course runner does for one course now."""

    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()


def plan_tick(
    course: Course,
    members: Iterable[str],
    active: Mapping[str, bool],
    control: Control,
    now: datetime,
    budget: int,
    seated: Iterable[str] = (),
) -> Tick:
    """Which members' course sessions to start and stop now.

    ``active`` maps each member with a course server to whether it is ready (False:
    still starting); ``seated`` are the members whose course server was ever made (a
    start was tried). From the pre-start to ``starts_at`` every member's session is
    kept going; until the end, a member the pre-start has not reached yet is still
    started (a big class, or a hub restart); for a while after "Start all", every
    member's. At the end, or after "Stop all", they are stopped. ``budget`` paces the
    starts: at most that many start at once, counting those still starting, so that a
    class of forty never floods the scheduler.
    """
    current = phase(course, now)
    if current == "ended" or (control.held and current != "scheduled"):
        return Tick(stop=tuple(sorted(active)))
    if current == "scheduled" or (course.ends_at - now).total_seconds() < MIN_SESSION:
        return Tick()
    everyone = current == "warming" or now.timestamp() < control.start_requested_at + (
        START_ALL_WINDOW
    )
    tried = set(seated)
    missing = [
        user
        for user in sorted(set(members))
        if user not in active and (everyone or user not in tried)
    ]
    starting = sum(1 for ready in active.values() if not ready)
    return Tick(start=tuple(missing[: max(0, budget - starting)]))
