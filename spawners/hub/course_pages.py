"""A course's pages: the link members follow, the instructor view, and the landing
after login.

- ``/hub/course/NAME`` takes a member into their course session, with the material
  open; if it is not running yet, through the spawn page's progress.
- ``/hub/factorylab/courses/NAME``: for instructors and admins, each member's state
  and time left, with "Start all", "Stop all" and "Re-pull the material".
- :func:`course_landing` is ``JupyterHub.default_url``: a member who logs in while one
  of their courses is open lands in it.
"""

from __future__ import annotations

from urllib.parse import quote

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

from spawners.hub.admin_page import duration
from spawners.hub.census import session_row
from spawners.hub.course_book import CourseSite, open_courses
from spawners.hub.course_seats import course_spawner
from spawners.session.courses import (
    closed_sentence,
    is_member,
    is_open,
    landing_path,
    may_manage,
    members_of,
    phase,
    utcnow,
)
from spawners.session.site_checks import SITE_CHECKS
from spawners.site.course_sections import COURSE_ROUTE, Course
from spawners.site.loader import SiteFileError, cached_site
from spawners.slurm.services import shared_monitor

TEMPLATE = "factorylab_course.html"
#: A running session whose kernels did nothing for this long shows as idle (seconds).
IDLE_AFTER = 300


def member_state(spawner, snapshot, user: str, course: Course) -> dict:
    """One member's row: their course session's state, reason, node and time left."""
    row = {"user": user, "state": "not started", "detail": "", "node": "", "time_left": None}
    if spawner is None:  # never started, or its record was removed at the end
        return {**row, "state": "ended"} if phase(course, utcnow()) == "ended" else row
    session = spawner.slurm_session() if spawner.active else None
    if session is None or not getattr(session, "job_id", ""):
        if spawner.active:
            return {**row, "state": "starting"}
        # the record exists once a start was tried: this session ran, or was refused
        return {**row, "state": "ended", "detail": spawner.ended_message}
    facts = session_row(user, course.name, session, snapshot)
    if facts.state == "pending":
        place = f", {facts.queue_position} in line" if facts.queue_position else ""
        return {**row, "state": "pending", "detail": f"{facts.reason or 'queued'}{place}"}
    if facts.state != "running":
        return {**row, "state": "starting" if spawner.pending else "ending"}
    idle = facts.idle_seconds is not None and facts.idle_seconds >= IDLE_AFTER
    return {
        **row,
        "state": "idle" if idle else ("running" if spawner.ready else "starting"),
        "detail": f"idle {duration(facts.idle_seconds)}" if idle else "",
        "node": facts.node,
        "time_left": facts.time_left_seconds,
    }


class _CoursePage(CourseSite, BaseHandler):
    def course(self, name: str) -> Course:
        course = self.book.get(self.site, name)
        if course is None:
            raise web.HTTPError(404, f"There is no course called {name!r}.")
        return course


class CourseLinkHandler(_CoursePage):
    """``/hub/course/NAME``: the link an instructor shares."""

    @web.authenticated
    async def get(self, name: str) -> None:
        course, user = self.course(name), self.current_user
        if not is_member(course, user.name):
            if may_manage(course, user.name, bool(getattr(user, "admin", False))):
                self.redirect(url_path_join(self.hub.base_url, "factorylab/courses", name))
                return
            raise web.HTTPError(
                403,
                f"You are not a member of the course {course.title!r}; ask its instructor "
                f"to add you.",
            )
        now = utcnow()
        if not is_open(course, now):
            raise web.HTTPError(409, closed_sentence(course, now))
        lab = url_path_join(user.server_url(name), landing_path(course))
        spawner = course_spawner(user, name)
        if spawner is not None and spawner.ready:
            self.redirect(lab)
            return
        spawn = url_path_join(self.hub.base_url, "spawn", user.escaped_name, name)
        self.redirect(f"{spawn}?next={quote(lab, safe='')}")


class InstructorViewHandler(_CoursePage):
    """``/hub/factorylab/courses/NAME``: the course's members, for its instructors."""

    @web.authenticated
    async def get(self, name: str) -> None:
        course, caller = self.course(name), self.current_user
        if not may_manage(course, caller.name, bool(getattr(caller, "admin", False))):
            raise web.HTTPError(403, "Only the course's instructors and admins see this page.")
        snapshot = shared_monitor(self.site).snapshot
        rows = []
        for member in members_of(course):
            spawner = course_spawner(self.find_user(member), name)
            rows.append(member_state(spawner, snapshot, member, course))
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        html = await self.render_template(
            TEMPLATE,
            course=course,
            phase=phase(course, utcnow()),
            rows=rows,
            counts=counts,
            duration=duration,
            link=url_path_join(self.hub.base_url, "course", name),
            snapshot_wall=snapshot.taken_wall,
        )
        self.finish(html)


def course_landing(site_file: str):
    """``JupyterHub.default_url``: a member lands in their open course after login
    (the first by start time); others get JupyterHub's usual page (empty answer)."""

    def landing(handler: BaseHandler) -> str:
        name = getattr(handler.current_user, "name", "")
        if not name:
            return ""
        try:
            site = cached_site(site_file, SITE_CHECKS)
        except SiteFileError as exc:  # logins go on without courses
            handler.log.error("Courses are unavailable: %s", exc)
            return ""
        courses = open_courses(site, name, utcnow())
        return url_path_join(handler.hub.base_url, "course", courses[0].name) if courses else ""

    return landing


def handlers(site_file: str) -> list[tuple]:
    """Routes to add with ``c.JupyterHub.extra_handlers``."""
    settings = {"site_file": site_file}
    name = COURSE_ROUTE
    return [
        (r"/course/" + name, CourseLinkHandler, settings),
        (r"/factorylab/courses/" + name, InstructorViewHandler, settings),
    ]
