"""The courses section: one model for the site file and the course API."""

import pytest
from pydantic import ValidationError

from spawners.site.course_sections import Course
from spawners.site.loader import SiteFileError, parse_site

from ..conftest import REPO

COURSE = {
    "name": "intro-gpu",
    "title": "Intro to GPUs",
    "members": ["demo26", "demo27"],
    "profile": "lab",
    "starts_at": "2026-12-01T09:00:00+01:00",
    "ends_at": "2026-12-01T12:00:00+01:00",
}


def test_a_course_and_what_it_derives():
    course = Course.model_validate({**COURSE, "prestart_minutes": 15})
    assert course.prestart_at.isoformat() == "2026-12-01T08:45:00+01:00"
    assert course.folder == "courses/intro-gpu" and course.material is None


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"name": "Intro GPU!"}, "name", "unsafe characters"),
        ({"name": "../etc"}, "name", "unsafe characters"),
        ({"name": "intro_gpu"}, "name", "unsafe characters"),
        ({"name": "2026-intro"}, "name", "unsafe characters"),
        ({"name": "intro--gpu"}, "name", "unsafe characters"),
        ({"name": "a" * 31}, "name", "unsafe characters"),
        ({"prestart_minutes": 0}, "prestart_minutes", "greater than or equal to 1"),
        ({"open": "../../.bashrc.ipynb", "material": "/srv/m.git"}, "open", "not a notebook"),
        ({"open": "lesson/.hidden.ipynb", "material": "/srv/m.git"}, "open", "not a notebook"),
        ({"open": "lesson/run.py", "material": "/srv/m.git"}, "open", "not a notebook"),
        ({"open": "lesson/01.ipynb"}, "open", "needs the course's material"),
        ({"ends_at": "2026-12-01T08:00:00+01:00"}, "ends_at", "is not after starts_at"),
        ({"starts_at": "2026-12-01T09:00:00"}, "starts_at", "timezone"),
        ({"members": [], "group": None}, "members", "needs members"),
        ({"members": ["root; id"]}, "members", "pattern"),
        ({"profile": {"partition": "lab", "account": "other"}}, "profile", "'account' cannot"),
        ({"material": "https://example.org/x.git; rm -rf ~"}, "material", "pattern"),
        ({"prestart_minutes": 500}, "prestart_minutes", "less than or equal"),
        ({"colour": "blue"}, "colour", "Extra inputs"),
    ],
)
def test_bad_courses_name_the_field(change, field, words):
    with pytest.raises(ValidationError) as caught:
        Course.model_validate({**COURSE, **change})
    error = caught.value.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    assert where.startswith(field) or error["msg"].split("Value error, ")[-1].startswith(field)
    assert words in str(caught.value)


def _site_with(courses, **hub):
    import yaml

    data = yaml.safe_load((REPO / "hub_config" / "site.local.yaml").read_text())
    data["courses"] = courses
    data["hub"].update(hub)
    return parse_site(data, "site.yaml")


def test_the_site_file_declares_courses():
    site = _site_with([COURSE])
    assert [course.name for course in site.courses] == ["intro-gpu"]


@pytest.mark.parametrize(
    ("courses", "hub", "words"),
    [
        ([{**COURSE, "profile": "nope"}], {}, "courses.intro-gpu.profile: 'nope' is not one of"),
        ([COURSE, COURSE], {}, "two courses are named 'intro-gpu'"),
        ([COURSE], {"named_servers": 0}, "set hub.named_servers to 1 or more"),
    ],
)
def test_site_file_courses_are_checked(courses, hub, words):
    with pytest.raises(SiteFileError) as caught:
        _site_with(courses, **hub)
    assert words in str(caught.value)
