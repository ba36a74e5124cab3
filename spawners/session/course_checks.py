"""Whether a course can run on this site: its people exist, its reservation holds them
for the whole window, and its request is one every member may make.

The hub gathers the facts (each member's entitlements, Slurm's reservations); the
checks here are pure. Each refusal names the course field to fix.
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Mapping, Sequence
from datetime import datetime

from spawners.session.courses import members_of, session_options
from spawners.session.entitlements import Entitlements, unix_groups
from spawners.session.request import InvalidRequest, parse_request
from spawners.site.course_sections import Course
from spawners.site.model import Site, course_problem
from spawners.site.units import format_walltime
from spawners.slurm.reservations import Reservation


class InvalidCourse(ValueError):
    """A course that cannot run. ``field`` names the course field; ``str()`` the fix."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def check_people(course: Course, site: Site) -> list[str]:
    """The course's members (group included), after checking every named person exists."""
    for field, names in (("members", course.members), ("instructors", course.instructors)):
        for name in names:
            try:
                pwd.getpwnam(name)
            except KeyError:
                raise InvalidCourse(field, f"{name!r} is not a user of this site") from None
    if course.group:
        try:
            grp.getgrnam(course.group)
        except KeyError:
            raise InvalidCourse("group", f"{course.group!r} is not a Unix group here") from None
    members = members_of(course)
    if not members:
        raise InvalidCourse("group", f"{course.group!r} has no users; add members")
    for name in members:
        if site.users.group and site.users.group not in unix_groups(name):
            raise InvalidCourse(
                "members" if name in course.members else "group",
                f"{name!r} may not log in here (not in group {site.users.group}); "
                f"add them to it or leave them out",
            )
    return members


def check_times(course: Course, now: datetime) -> None:
    """A new or changed course must still be ahead of its end."""
    if course.ends_at <= now:
        raise InvalidCourse("ends_at", f"{course.ends_at.isoformat()} is in the past")


def check_reservation(
    course: Course, reservations: Sequence[Reservation], members: Sequence[str], partition: str
) -> None:
    """The reservation exists, is in the course's partition, covers the pre-start to the
    end, and admits every member by name or Unix group. Course sessions are charged to
    each member's default account, so a reservation that admits by account is refused:
    it would let the course pass here and every job be refused by Slurm."""
    if not course.reservation:
        return
    found = {reservation.name: reservation for reservation in reservations}
    reservation = found.get(course.reservation)
    if reservation is None:
        raise InvalidCourse(
            "reservation",
            f"{course.reservation!r} is not a Slurm reservation; ask an admin to create it "
            f"(scontrol create reservation) or leave it out",
        )
    if reservation.partition and reservation.partition != partition:
        raise InvalidCourse(
            "reservation",
            f"{course.reservation!r} is in partition {reservation.partition}; the course's "
            f"sessions run in {partition}",
        )
    if any(not entry.startswith("-") for entry in reservation.accounts):
        raise InvalidCourse(
            "reservation",
            f"{course.reservation!r} admits by account; name the members (Users=) or their "
            f"group (Groups=) in it instead",
        )
    # Slurm prints its times in the controller's local time, without a zone.
    start = reservation.start.astimezone() if reservation.start else None
    end = reservation.end.astimezone() if reservation.end else None
    if (start and start > course.prestart_at) or (end and end < course.ends_at):
        raise InvalidCourse(
            "reservation",
            f"{course.reservation!r} runs {start and start.isoformat()} to "
            f"{end and end.isoformat()}, which does not cover the pre-start "
            f"({course.prestart_at.isoformat()}) to the end ({course.ends_at.isoformat()})",
        )
    for name in members:
        if not reservation.usable_by(name, (), unix_groups(name)):
            raise InvalidCourse(
                "reservation",
                f"{course.reservation!r} does not admit member {name!r}; add them to it",
            )


def check_requests(course: Course, site: Site, entitlements: Mapping[str, Entitlements]) -> None:
    """Every member may make the course's request, for the whole window, in its reservation."""
    options = session_options(course, course.prestart_at)
    for name, allowed in sorted(entitlements.items()):
        try:
            parse_request(options, site, course_entitlements(allowed, course, site))
        except InvalidRequest as exc:
            field = "ends_at" if exc.field == "walltime" else "profile"
            detail = str(exc)
            if exc.field == "walltime":
                length = format_walltime(int((course.ends_at - course.prestart_at).total_seconds()))
                detail = f"sessions would run {length} from the pre-start; {exc}"
            raise InvalidCourse(field, f"member {name!r} cannot have it: {detail}") from None


def course_entitlements(allowed: Entitlements, course: Course, site: Site) -> Entitlements:
    """A member's entitlements for their course session: plus the course's reservation
    (checked to admit them) and its profile, unless the profile is kept to groups they
    are not in. The profile's own walltime gives way to the course's window, so a
    profile hidden from a member only by its length is theirs inside the course."""
    reservations, profiles = allowed.reservations, allowed.profiles
    if course.reservation and course.reservation not in reservations:
        reservations = (*reservations, course.reservation)
    profile = site.profiles.get(course.profile) if isinstance(course.profile, str) else None
    admitted = profile is not None and (not profile.groups or set(profile.groups) & allowed.groups)
    if admitted and course.profile not in profiles:
        profiles = (*profiles, course.profile)
    return Entitlements(
        user=allowed.user,
        groups=allowed.groups,
        partitions=allowed.partitions,
        profiles=profiles,
        accounts=allowed.accounts,
        reservations=reservations,
    )


def check_site_rules(course: Course, site: Site) -> None:
    """What the site file alone rules out (a profile it lacks, no named servers)."""
    problem = course_problem(course, site)
    if problem:
        field, _, message = problem.partition(": ")
        raise InvalidCourse(field, message)
