"""A course checked against the live site before the hub keeps it: its people, each
member's own limits (from Slurm's accounts) and its Slurm reservation."""

from __future__ import annotations

from datetime import datetime

from spawners.hub.options import user_entitlements
from spawners.session.course_checks import (
    InvalidCourse,
    check_people,
    check_requests,
    check_reservation,
    check_site_rules,
    check_times,
)
from spawners.session.courses import course_partition, utcnow
from spawners.site.course_sections import Course
from spawners.site.model import Site
from spawners.slurm.client import SlurmClient, SlurmError
from spawners.slurm.reservations import parse_reservations
from spawners.slurm.services import shared_cluster_state


async def validate_course(course: Course, site: Site, now: datetime | None = None) -> None:
    """Raise :class:`InvalidCourse` (naming the field) if ``course`` cannot run here."""
    check_site_rules(course, site)
    check_times(course, now or utcnow())
    members = check_people(course, site)
    cluster = shared_cluster_state(site)
    entitlements = {name: await user_entitlements(site, name, cluster) for name in members}
    if course.reservation:
        try:
            text = await SlurmClient.for_site(site).reservations()
        except SlurmError as exc:
            raise InvalidCourse(
                "reservation", f"Slurm did not list its reservations ({exc}); try again"
            ) from None
        partition = course_partition(course, site.profiles, site.defaults.partition)
        check_reservation(course, parse_reservations(text), members, partition)
    check_requests(course, site, entitlements)
