"""Members' course servers as JupyterHub records ("seats").

JupyterHub counts every named-server record against ``named_server_limit_per_user``,
and never creates one past the limit. A course seats its members before it starts
them, so a member's own named servers never keep them out of their class; when the
course ends, or is deleted, the stopped records are removed, so courses never pile up
against a member's limit.
"""

from __future__ import annotations

from jupyterhub.utils import maybe_future

from spawners.session.courses import members_of
from spawners.site.course_sections import Course


def course_spawner(user, name: str):
    """``user``'s spawner for server ``name`` if it was ever created, else None (never
    creating one: JupyterHub's spawner dict makes a database record on a lookup)."""
    if user is None or name not in user.orm_user.orm_spawners:
        return None
    return user.spawners[name]


def seat_members(handler, course: Course) -> int:
    """Make each member's course server record (and hub user) if missing; how many."""
    made = 0
    for member in members_of(course):
        user = handler.user_from_username(member)
        if course.name not in user.orm_user.orm_spawners:
            user.spawners[course.name]  # JupyterHub makes the record on lookup
            made += 1
    return made


async def release_seats(handler, course: Course) -> int:
    """Remove the members' stopped course server records; how many."""
    removed = 0
    for member in members_of(course):
        user = handler.find_user(member)
        spawner = course_spawner(user, course.name)
        if spawner is None or spawner.active:
            continue
        await maybe_future(spawner.delete_forever())
        handler.db.delete(spawner.orm_spawner)
        user.spawners.pop(course.name, None)
        handler.db.commit()
        removed += 1
    return removed
