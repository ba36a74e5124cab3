"""A course's rules: its window, its request, and what the runner does each tick."""

from datetime import UTC, datetime, timedelta

import pytest

from spawners.session.courses import (
    START_ALL_WINDOW,
    Control,
    closed_sentence,
    course_material,
    is_member,
    is_open,
    landing_path,
    may_manage,
    phase,
    plan_tick,
    session_options,
)
from spawners.site.course_sections import Course

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MEMBERS = [f"demo{n:02d}" for n in range(26, 36)]


def course(**change) -> Course:
    fields = {
        "name": "intro",
        "title": "Intro",
        "members": MEMBERS,
        "instructors": ["demo40"],
        "profile": "lab",
        "starts_at": START,
        "ends_at": START + timedelta(hours=2),
        "prestart_minutes": 10,
    }
    return Course.model_validate({**fields, **change})


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("minutes", "expected", "open_"),
    [
        (-11, "scheduled", False),
        (-10, "warming", True),
        (0, "running", True),
        (120, "ended", False),
    ],
)
def test_the_window(minutes, expected, open_):
    assert phase(course(), at(minutes)) == expected
    assert is_open(course(), at(minutes)) is open_


def test_members_and_instructors():
    assert is_member(course(), "demo26") and not is_member(course(), "demo40")
    assert may_manage(course(), "demo40", admin=False)
    assert not may_manage(course(), "demo26", admin=False) and may_manage(course(), "x", True)


def test_closed_sentences_say_when():
    assert "opens at 2026-12-01T08:50:00+00:00" in closed_sentence(course(), at(-30))
    assert "ended at 2026-12-01T11:00:00+00:00" in closed_sentence(course(), at(200))


def test_a_session_ends_with_the_course_rounded_down_to_the_minute():
    options = session_options(course(reservation="intro-res"), at(-10) + timedelta(seconds=20))
    assert options == {"profile": "lab", "walltime": "02:09:00", "reservation": "intro-res"}
    assert session_options(course(), at(119.99))["walltime"] == "00:01:00"


def test_a_course_request_instead_of_a_profile():
    options = session_options(course(profile={"partition": "cpu", "cpus": 2}), at(0))
    assert options == {"partition": "cpu", "cpus": "2", "walltime": "02:00:00"}


def test_material_and_landing():
    with_material = course(material="/srv/material/intro.git", material_branch="main")
    assert course_material(with_material, "/home/demo26/", "/home/demo26/.s") == {
        "repo": "/srv/material/intro.git",
        "branch": "main",
        "target": "/home/demo26/courses/intro",
        "gitconfig": "/home/demo26/.s/gitconfig",
    }
    assert course_material(course(), "/home/demo26", "/x") is None
    assert landing_path(course()) == "lab/workspaces/intro/tree/courses/intro"
    opened = course(material="/srv/m.git", open="lesson/01-start.ipynb")
    assert landing_path(opened) == "lab/workspaces/intro/tree/courses/intro/lesson/01-start.ipynb"


def test_warming_starts_the_missing_members_a_few_at_a_time():
    active = {"demo26": True, "demo27": False, "demo28": False}
    tick = plan_tick(course(), MEMBERS, active, Control(), at(-5), budget=4)
    assert tick.start == ("demo29", "demo30") and tick.stop == ()  # 2 still starting
    assert plan_tick(course(), MEMBERS, active, Control(), at(-5), budget=2).start == ()


def test_nothing_starts_before_the_prestart():
    assert plan_tick(course(), MEMBERS, {}, Control(), at(-11), budget=10).start == ()


def test_after_the_start_only_members_never_reached_are_started():
    # a member who stopped their session after the start is not started again, but one
    # the pre-start had not reached yet (a big class, a hub restart) still is
    seated = MEMBERS[:8]
    tick = plan_tick(course(), MEMBERS, {}, Control(), at(5), budget=10, seated=seated)
    assert tick.start == ("demo34", "demo35")


def test_start_all_starts_everyone_for_a_while():
    requested = at(5).timestamp()
    control = Control(start_requested_at=requested)
    assert len(plan_tick(course(), MEMBERS, {}, control, at(5), budget=10).start) == 10
    later = at(5) + timedelta(seconds=START_ALL_WINDOW + 1)
    assert plan_tick(course(), MEMBERS, {}, control, later, 10, seated=MEMBERS).start == ()


def test_the_end_and_stop_all_stop_every_session():
    active = {"demo26": True, "demo27": False}
    assert plan_tick(course(), MEMBERS, active, Control(), at(120), 10).stop == ("demo26", "demo27")
    held = Control(held=True)
    assert plan_tick(course(), MEMBERS, active, held, at(-5), 10).stop == ("demo26", "demo27")
    assert plan_tick(course(), MEMBERS, active, held, at(-5), 10).start == ()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"held": True, "start_requested_at": 5}, Control(True, 5.0)),
        ({"held": "yes", "start_requested_at": "soon"}, Control()),
        ({"start_requested_at": True}, Control()),
        ({}, Control()),
    ],
)
def test_controls_read_back_safely(data, expected):
    assert Control.from_dict(data) == expected
    assert Control.from_dict(expected.as_dict()) == expected


def test_no_session_is_started_in_the_last_two_minutes():
    control = Control(start_requested_at=at(117).timestamp())
    assert plan_tick(course(), MEMBERS, {}, control, at(118.5), budget=10).start == ()
    assert len(plan_tick(course(), MEMBERS, {}, control, at(117.9), budget=10).start) == 10
