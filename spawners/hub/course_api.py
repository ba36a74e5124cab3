"""``/hub/api/factorylab/courses``: courses through the hub's REST API.

``GET`` lists, ``POST`` creates; ``GET``, ``PATCH`` and ``DELETE`` act on
``/courses/NAME``; ``POST /courses/NAME/start|stop|pull`` are the instructor view's
"Start all", "Stop all" and "Re-pull the material". Admins (and the admin API token)
manage every course; instructors manage their own, except who is in it and what it
may ask for, and create none. Every bad definition is a 400 that names the field.
"""

from __future__ import annotations

import asyncio
import json
import time

from jupyterhub.apihandlers import APIHandler
from pydantic import ValidationError
from tornado import web

from spawners.hub.course_book import CourseBookError, CourseSite
from spawners.hub.course_calls import call_members, pull, warm
from spawners.hub.course_checks import validate_course
from spawners.hub.course_seats import (
    course_spawner,
    release_seats,
    seat_members,
    stop_course_servers,
)
from spawners.hub.session_api import json_body
from spawners.session.course_checks import InvalidCourse
from spawners.session.courses import Control, may_manage, members_of, phase, utcnow
from spawners.site.course_sections import COURSE_ROUTE, Course
from spawners.site.model import Site

ROUTE = r"/api/factorylab/courses"
#: What an instructor may not change on their own course (admins may).
#: The material too: a session trusts its repository (see session_files.pull_material).
ADMIN_FIELDS = frozenset(
    {
        "name",
        "members",
        "group",
        "instructors",
        "profile",
        "reservation",
        "material",
        "material_branch",
    }
)
#: Courses change one at a time: checking one takes seconds (each member's accounts,
#: Slurm's reservations), and two changes must not each write back what the other read.
_WRITES = asyncio.Lock()


def is_admin(handler: APIHandler) -> bool:
    """Whether the caller may manage every course: hub admins and the admin token."""
    return "admin:servers" in handler.expanded_scopes


def course_json(
    course: Course, site: Site, book, seated: list[str] | None = None, now=None
) -> dict:
    """A course as the API shows it: its fields, where it came from, its phase, members,
    and the members who have a course server record (``seated``: a start was tried)."""
    now = now or utcnow()
    return {
        **course.model_dump(mode="json"),
        "source": book.source(site, course.name),
        "phase": phase(course, now),
        "prestart_at": course.prestart_at.isoformat(),
        "resolved_members": members_of(course),
        "control": book.control(course.name).as_dict(),
        "seated": seated or [],
        "url": f"/hub/course/{course.name}",
    }


def parse_course(data: object) -> Course:
    """A course from a JSON body; a 400 naming the first bad field."""
    try:
        return Course.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "body"
        message = error["msg"].removeprefix("Value error, ")
        if ": " in message and not error["loc"]:  # the whole-course checks name the field
            raise web.HTTPError(400, message) from None
        raise web.HTTPError(400, f"{field}: {message}") from None


class _CourseHandler(CourseSite, APIHandler):
    """What the course endpoints share: the site, the book, and who may do what."""

    def body(self) -> object:
        try:
            return json.loads(self.request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPError(400, "the body must be a JSON object") from None

    def managed(self, name: str) -> Course:
        """The course ``name`` if the caller may manage it; 404 otherwise."""
        course = self.book.get(self.site, name)
        user = self.current_user
        caller = getattr(user, "name", "")
        if course is None or not may_manage(course, caller, is_admin(self)):
            raise web.HTTPError(404, f"no course {name!r} that you manage")
        return course

    async def checked(self, course: Course, before: Course | None = None) -> Course:
        """``course`` checked against the live site: a 400 naming the field otherwise."""
        try:
            await validate_course(course, self.site)
        except InvalidCourse as exc:
            raise web.HTTPError(400, str(exc)) from None
        known = set(members_of(before)) if before is not None else set()
        for member in members_of(course):  # a member's own server must not become the course's
            user = self.find_user(member)
            if member not in known and user is not None and course.name in user.orm_spawners:
                raise web.HTTPError(
                    400,
                    f"name: member {member!r} already has a server called {course.name!r}; "
                    f"choose another name for the course",
                )
        return course

    def seated(self, course: Course) -> list[str]:
        """The members who have a course server record (from the hub's database)."""
        return [
            member
            for member in members_of(course)
            if course_spawner(self.find_user(member), course.name) is not None
        ]

    def users_in_body(self) -> list[str]:
        """The ``users`` list of a JSON body; a 400 otherwise."""
        users = json_body(self, {"users"}).get("users")
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise web.HTTPError(400, "users: a list of the members")
        return users

    def store(self, action, *args) -> None:
        try:
            action(*args)
        except CourseBookError as exc:
            self.log.error("%s", exc)
            raise web.HTTPError(500, "the hub could not save the course; see its log") from None


class CoursesHandler(_CourseHandler):
    """``GET`` the courses the caller manages; ``POST`` a new one (admins)."""

    @web.authenticated
    async def get(self) -> None:
        site, book, admin = self.site, self.book, is_admin(self)
        caller = getattr(self.current_user, "name", "")
        rows = [
            course_json(course, site, book, seated=self.seated(course))
            for course in book.courses(site).values()
            if may_manage(course, caller, admin)
        ]
        self.finish(json.dumps({"courses": rows}))

    @web.authenticated
    async def post(self) -> None:
        if not is_admin(self):
            raise web.HTTPError(403, "only admins create courses; ask one to create yours")
        course = parse_course(self.body())
        async with _WRITES:
            if self.book.get(self.site, course.name) is not None:
                raise web.HTTPError(409, f"name: a course {course.name!r} exists; PATCH it")
            await self.checked(course)
            self.store(self.book.put, course)
        self.log.info(
            "Course %s created by %s", course.name, getattr(self.current_user, "name", "")
        )
        self.set_status(201)
        self.finish(json.dumps(course_json(course, self.site, self.book)))


class CourseHandler(_CourseHandler):
    """``GET``, ``PATCH`` and ``DELETE`` one course."""

    @web.authenticated
    async def get(self, name: str) -> None:
        self.finish(json.dumps(course_json(self.managed(name), self.site, self.book)))

    @web.authenticated
    async def patch(self, name: str) -> None:
        async with _WRITES:
            await self._patch(name)

    async def _patch(self, name: str) -> None:
        course = self.managed(name)
        if self.book.source(self.site, name) == "site":
            raise web.HTTPError(409, f"{name!r} is declared in the site file; change it there")
        changes = self.body()
        if not isinstance(changes, dict):
            raise web.HTTPError(400, "the body must be a JSON object of the fields to change")
        if not is_admin(self):
            refused = sorted(set(changes) & ADMIN_FIELDS)
            if refused:
                raise web.HTTPError(403, f"{refused[0]}: only admins may change it")
        if changes.get("name", name) != name:
            raise web.HTTPError(400, "name: a course keeps its name; create a new one instead")
        updated = parse_course({**course.model_dump(mode="json"), **changes})
        await self.checked(updated, before=course)
        self.store(self.book.put, updated)
        moved = (updated.prestart_at, updated.ends_at) != (course.prestart_at, course.ends_at)
        if moved:  # a new window: last session's "Stop all" or "Start all" does not carry over
            self.store(self.book.set_control, name, Control())
        self.finish(json.dumps(course_json(updated, self.site, self.book)))

    @web.authenticated
    async def delete(self, name: str) -> None:
        course = self.managed(name)
        if not is_admin(self):
            raise web.HTTPError(403, "only admins delete courses")
        if self.book.source(self.site, name) == "site":
            raise web.HTTPError(409, f"{name!r} is declared in the site file; remove it there")
        async with _WRITES:
            self.store(self.book.remove, name)
        # nobody would stop them now: the course's sessions end with it
        await stop_course_servers(self, course)
        self.set_status(204)
        self.finish()


class CourseActionHandler(_CourseHandler):
    """``POST /courses/NAME/start``, ``/stop`` and ``/pull``; ``/seats`` and
    ``/release`` (admins: the course runner) make and remove members' records."""

    @web.authenticated
    async def post(self, name: str, action: str) -> None:
        course = self.managed(name)
        if action in ("seats", "release"):
            if not is_admin(self):
                raise web.HTTPError(403, f"{action}: only admins and the course runner")
            if action == "seats":
                count = seat_members(self, course, self.users_in_body())
            else:
                count = await release_seats(self, course)
            self.finish(json.dumps({action: count}))
            return
        if action == "pull":
            results = await call_members(self, self.site, course, pull(course))
            self.finish(json.dumps({"pulled": results if course.material else {}}))
            return
        if action == "warm":
            if not is_admin(self):
                raise web.HTTPError(403, "warm: only admins and the course runner")
            users = self.users_in_body()
            results = await call_members(self, self.site, course, warm(course), users)
            self.finish(json.dumps({"warmed": results if course.open else {}}))
            return
        if action == "start":
            if phase(course, utcnow()) in ("scheduled", "ended"):
                raise web.HTTPError(409, "the course is not open; sessions start at its pre-start")
            control = Control(held=False, start_requested_at=time.time())
        else:
            control = Control(held=True)
        self.store(self.book.set_control, name, control)
        self.finish(json.dumps(course_json(course, self.site, self.book)))


def handlers(site_file: str) -> list[tuple]:
    """Routes to add with ``c.JupyterHub.extra_handlers``."""
    settings = {"site_file": site_file}
    return [
        (ROUTE, CoursesHandler, settings),
        (ROUTE + "/" + COURSE_ROUTE, CourseHandler, settings),
        (
            ROUTE + "/" + COURSE_ROUTE + r"/(start|stop|pull|seats|release|warm)",
            CourseActionHandler,
            settings,
        ),
    ]
