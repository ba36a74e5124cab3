"""Members' course servers as JupyterHub records ("seats").

JupyterHub counts every named-server record against ``named_server_limit_per_user``,
and never creates one past the limit. A course seats its members before it starts
them, so a member's own named servers never keep them out of their class; when the
course ends, or is deleted, the stopped records are removed, so courses never pile up
against a member's limit.
"""

from __future__ import annotations

import asyncio

from jupyterhub.utils import maybe_future

from spawners.session.courses import members_of
from spawners.site.course_sections import Course


def course_spawner(user, name: str):
    """``user``'s spawner for server ``name`` if its record exists, else None."""
    if user is None or name not in user.orm_user.orm_spawners:
        return None
    return user.spawners[name]


def seat_members(handler, course: Course, users: list[str]) -> int:
    """Make the course server record (and hub user) of each of ``users`` who is a member
    and has none; how many were made."""
    made = 0
    for member in sorted(set(users) & set(members_of(course))):
        user = handler.user_from_username(member)
        if course.name not in user.orm_user.orm_spawners:
            user.get_or_create_spawner(course.name, "")
            made += 1
    return made


async def remove_seat(handler, user, spawner, name: str) -> None:
    """Remove one stopped course server's record."""
    await maybe_future(spawner.delete_forever())
    handler.db.delete(spawner.orm_spawner)
    user.spawners.pop(name, None)
    handler.db.commit()


async def release_seats(handler, course: Course) -> int:
    """Remove the members' stopped course server records; how many."""
    removed = 0
    for member in members_of(course):
        user = handler.find_user(member)
        spawner = course_spawner(user, course.name)
        if spawner is None or spawner.active:
            continue
        await remove_seat(handler, user, spawner, course.name)
        removed += 1
    return removed


async def stop_course_servers(handler, course: Course, wait: float = 10) -> None:
    """Stop the members' course servers, starting ones included, as JupyterHub's own
    DELETE does (cancel the start, then stop), and remove each record once its server
    has stopped. Waits at most ``wait`` seconds; slower stops finish on their own."""

    async def stop(user) -> None:
        spawner = course_spawner(user, course.name)
        if spawner is None:
            return
        try:
            if spawner.pending == "spawn" and spawner._spawn_future:
                spawner._spawn_future.cancel()
                await asyncio.sleep(1)
            if spawner.active and spawner.pending != "stop":
                await handler.stop_single_user(user, course.name)
            if spawner._stop_future is not None:
                await spawner._stop_future
            if not spawner.active:
                await remove_seat(handler, user, spawner, course.name)
        except Exception as exc:  # one member's trouble never stops the others'
            handler.log.warning("Course %s: %s's session: %s", course.name, user.name, exc)

    users = [handler.find_user(member) for member in members_of(course)]
    stops = [asyncio.ensure_future(stop(user)) for user in users if user is not None]
    if stops:
        await asyncio.wait(stops, timeout=wait)
