"""The hub's courses: those of the site file, and those made through the course API.

API courses and every course's control (held, "Start all") are kept in one JSON file
in the hub's state directory, written whole and atomically, so a hub restart in the
middle of a course loses nothing. Site-file courses are changed in the site file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from spawners.session.courses import Control, is_member, is_open
from spawners.session.site_checks import SITE_CHECKS
from spawners.site.course_sections import Course
from spawners.site.loader import cached_site
from spawners.site.model import Site

FILE_NAME = "courses.json"


class CourseBookError(Exception):
    """The book's file cannot be read or written. ``str()`` says which and why."""


class CourseBook:
    """Courses by name, and what their instructors asked of them."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._courses: dict[str, Course] = {}
        self._controls: dict[str, Control] = {}
        self.problems: list[str] = []
        self._unreadable: list = []
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise CourseBookError(f"{self.path}: cannot read the courses: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("courses", []), list):
            raise CourseBookError(f"{self.path}: not a course book (a JSON object of courses)")
        for raw in data.get("courses", []):
            try:
                course = Course.model_validate(raw)
            except ValidationError as exc:  # kept as it was, and reported
                self.problems.append(f"{self.path}: a course was skipped: {exc}")
                self._unreadable.append(raw)
                continue
            self._courses[course.name] = course
        for name, control in (data.get("controls") or {}).items():
            self._controls[str(name)] = Control.from_dict(control or {})

    def _save(self) -> None:
        data = {
            "courses": [course.model_dump(mode="json") for course in self._courses.values()]
            + self._unreadable,
            "controls": {name: control.as_dict() for name, control in self._controls.items()},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".courses-")
        except OSError as exc:
            raise CourseBookError(f"{self.path}: cannot save the courses: {exc}") from None
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(data, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            Path(temporary).unlink(missing_ok=True)
            raise CourseBookError(f"{self.path}: cannot save the courses: {exc}") from None

    # -- reading -------------------------------------------------------------
    def courses(self, site: Site) -> dict[str, Course]:
        """Every course: the site file's first (they win a name clash), then the API's."""
        merged = {course.name: course for course in site.courses}
        for name, course in self._courses.items():
            merged.setdefault(name, course)
        return merged

    def get(self, site: Site, name: str) -> Course | None:
        """The course called ``name``, or None."""
        return self.courses(site).get(name)

    def source(self, site: Site, name: str) -> str:
        """``site`` (the site file) or ``api``."""
        return "site" if any(course.name == name for course in site.courses) else "api"

    def control(self, name: str) -> Control:
        """What the instructors asked of the course."""
        return self._controls.get(name, Control())

    # -- changing ------------------------------------------------------------
    def put(self, course: Course) -> None:
        """Add or replace an API course."""
        previous = self._courses.get(course.name)
        self._courses[course.name] = course
        try:
            self._save()
        except CourseBookError:
            self._restore(course.name, previous)
            raise

    def remove(self, name: str) -> None:
        """Delete an API course and its control."""
        previous = self._courses.pop(name, None)
        control = self._controls.pop(name, None)
        try:
            self._save()
        except CourseBookError:
            self._restore(name, previous)
            if control is not None:
                self._controls[name] = control
            raise

    def set_control(self, name: str, control: Control) -> None:
        """Record "Stop all" (held) or "Start all"."""
        previous = self._controls.get(name)
        self._controls[name] = control
        try:
            self._save()
        except CourseBookError:
            if previous is None:
                self._controls.pop(name, None)
            else:
                self._controls[name] = previous
            raise

    def _restore(self, name: str, previous: Course | None) -> None:
        if previous is None:
            self._courses.pop(name, None)
        else:
            self._courses[name] = previous


class CourseSite:
    """What the course pages and endpoints share: the site file they were given (re-read
    when it changes) and its course book. Mixed into tornado handlers."""

    def initialize(self, site_file: str) -> None:
        """Keep the site file's path (tornado passes the route's arguments here)."""
        self.site_file = site_file

    @property
    def site(self) -> Site:
        """The validated site file."""
        return cached_site(self.site_file, SITE_CHECKS)

    @property
    def book(self) -> CourseBook:
        """The hub's course book."""
        return shared_course_book(self.site)


def open_courses(site: Site, user: str, now: datetime) -> list[Course]:
    """``user``'s courses open at ``now``, earliest start first; none (logged) when the
    course book cannot be read: logins and ordinary spawns never wait on it."""
    try:
        courses = shared_course_book(site).courses(site).values()
    except CourseBookError as exc:
        logging.getLogger(__name__).error("Courses are unavailable: %s", exc)
        return []
    found = [course for course in courses if is_open(course, now) and is_member(course, user)]
    return sorted(found, key=lambda course: course.starts_at)


_books: dict[str, CourseBook] = {}


def shared_course_book(site: Site) -> CourseBook:
    """The hub-wide course book for this site's state directory."""
    path = str(Path(site.hub.state_dir) / FILE_NAME)
    if path not in _books:
        _books[path] = CourseBook(path)
        for problem in _books[path].problems:
            logging.getLogger(__name__).error("%s", problem)
    return _books[path]
