"""The hub's course book: API courses and controls survive a restart; bad files say so."""

import json

import pytest

from spawners.hub.course_book import CourseBook, CourseBookError
from spawners.session.courses import Control
from spawners.site.model import Site

from ..session.test_courses import course


def test_courses_and_controls_survive_a_restart(tmp_path, site):
    book = CourseBook(tmp_path / "courses.json")
    book.put(course())
    book.set_control("intro", Control(held=True))
    again = CourseBook(tmp_path / "courses.json")
    assert again.get(site, "intro") == course() and again.control("intro").held
    assert again.source(site, "intro") == "api"
    again.remove("intro")
    assert CourseBook(tmp_path / "courses.json").get(site, "intro") is None


def test_the_site_file_wins_a_name_clash(tmp_path, site):
    book = CourseBook(tmp_path / "courses.json")
    book.put(course(title="From the API"))
    declared = Site.model_validate({**site.model_dump(), "courses": [course(title="Declared")]})
    assert book.get(declared, "intro").title == "Declared"
    assert book.source(declared, "intro") == "site"


def test_an_unreadable_file_is_an_error_that_names_it(tmp_path):
    path = tmp_path / "courses.json"
    path.write_text("{not json")
    with pytest.raises(CourseBookError, match=f"{path}: cannot read the courses"):
        CourseBook(path)


def test_a_bad_course_in_the_file_is_kept_on_disk_and_reported(tmp_path, site):
    path = tmp_path / "courses.json"
    good = course(name="good").model_dump(mode="json")
    path.write_text(json.dumps({"courses": [good, {**good, "name": "Bad!"}]}))
    book = CourseBook(path)
    assert list(book.courses(site)) == ["good"]
    assert "a course was skipped" in book.problems[0]


def test_a_failed_save_changes_nothing(tmp_path, site):
    book = CourseBook(tmp_path / "state" / "courses.json")
    book.put(course(title="First"))
    (tmp_path / "state" / "courses.json").unlink()
    (tmp_path / "state").rmdir()
    (tmp_path / "state").write_text("a file where the state directory was")
    with pytest.raises(CourseBookError, match="cannot save the courses"):
        book.put(course(title="Second"))
    with pytest.raises(CourseBookError):
        book.set_control("intro", Control(held=True))
    with pytest.raises(CourseBookError):
        book.remove("intro")
    assert book.get(site, "intro").title == "First" and not book.control("intro").held
