"""Whether a course can run: its people, its reservation, and each member's limits."""

import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from spawners.session import course_checks
from spawners.session.course_checks import (
    InvalidCourse,
    check_people,
    check_requests,
    check_reservation,
    check_site_rules,
    check_times,
    course_entitlements,
)
from spawners.session.request import entitlements_for
from spawners.slurm.reservations import Reservation

from .test_courses import START, at, course

USERS = {f"demo{n:02d}" for n in range(1, 41)}
GROUPS = {"demo21": {"factorylab-users", "factorylab-course"}, "stranger": {"stranger"}}


@pytest.fixture
def people(monkeypatch):
    """Unix users and groups as a small site has them (no real accounts needed)."""

    def getpwnam(name):
        if name not in USERS | {"stranger"}:
            raise KeyError(name)
        return SimpleNamespace(pw_name=name)

    def getgrnam(name):
        if name != "factorylab-course":
            raise KeyError(name)
        return SimpleNamespace(gr_name=name)

    monkeypatch.setattr(course_checks, "pwd", SimpleNamespace(getpwnam=getpwnam))
    monkeypatch.setattr(course_checks, "grp", SimpleNamespace(getgrnam=getgrnam))
    monkeypatch.setattr(
        course_checks, "unix_groups", lambda name: frozenset(GROUPS.get(name, {"factorylab-users"}))
    )
    monkeypatch.setattr(
        course_checks,
        "members_of",
        lambda c: sorted(
            set(c.members) | ({"demo21"} if c.group == "factorylab-course" else set())
        ),
    )


def test_people_exist_and_may_log_in(people, site):
    assert check_people(course(group="factorylab-course"), site)[0] == "demo21"
    for change, field, words in [
        ({"members": ["demo26", "ghost"]}, "members", "'ghost' is not a user"),
        ({"instructors": ["ghost"]}, "instructors", "'ghost' is not a user"),
        ({"group": "nobody-here"}, "group", "is not a Unix group"),
        ({"members": ["stranger"]}, "members", "may not log in here"),
    ]:
        with pytest.raises(InvalidCourse) as caught:
            check_people(course(**change), site)
        assert caught.value.field == field and words in str(caught.value)


def test_a_course_that_already_ended_is_refused():
    with pytest.raises(InvalidCourse, match=r"ends_at: .* is in the past"):
        check_times(course(), at(121))
    check_times(course(), at(0))


def test_the_site_file_rules(site):
    with pytest.raises(InvalidCourse, match="profile: 'nope' is not one of the profiles"):
        check_site_rules(course(profile="nope"), site)


@pytest.fixture
def paris(monkeypatch):
    """The controller's local time is UTC+1 (in December), as Slurm's naive times are."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def reservation(**change) -> Reservation:
    local = timezone(timedelta(hours=1))  # Slurm's times are the controller's local time
    fields = {
        "name": "intro",
        "state": "ACTIVE",
        "start": (START - timedelta(hours=1)).astimezone(local).replace(tzinfo=None),
        "end": (START + timedelta(hours=3)).astimezone(local).replace(tzinfo=None),
        "partition": "lab",
        "users": ("demo26", "demo27"),
        "accounts": (),
    }
    return Reservation(**{**fields, **change})


@pytest.mark.parametrize(
    ("reservations", "words"),
    [
        ([], "'intro' is not a Slurm reservation"),
        ([reservation(start=datetime(2026, 12, 1, 9, 55))], "does not cover the pre-start"),
        ([reservation(end=datetime(2026, 12, 1, 11, 30))], "does not cover the pre-start"),
        ([reservation(users=("demo26",))], "does not admit member 'demo27'"),
        ([reservation(partition="gpu")], "is in partition gpu; the course's sessions run in lab"),
        ([reservation(accounts=("training",))], "admits by account; name the members"),
    ],
)
def test_the_reservation_must_hold_the_whole_class(paris, monkeypatch, reservations, words):
    monkeypatch.setattr(course_checks, "unix_groups", lambda name: frozenset())
    with pytest.raises(InvalidCourse, match=words) as caught:
        check_reservation(course(reservation="intro"), reservations, ["demo26", "demo27"], "lab")
    assert caught.value.field == "reservation"


def test_a_reservation_that_holds_the_class(paris):
    check_reservation(course(reservation="intro"), [reservation()], ["demo26", "demo27"], "lab")


def member(site, name, groups, accounts=("factorylab-demo",)):
    return entitlements_for(site, name, frozenset(groups), tuple(accounts), ())


def test_every_member_may_make_the_request(site):
    plain = member(site, "demo26", {"factorylab-users"})
    attendee = member(site, "demo21", {"factorylab-users", "factorylab-course"}, ["training"])
    assert "lab" not in attendee.profiles  # its 8 hours are past the group's 1-hour limit
    short = course(ends_at=START + timedelta(minutes=45), reservation="intro")
    check_requests(short, site, {"demo26": plain, "demo21": attendee})
    allowed = course_entitlements(attendee, short, site)
    assert "lab" in allowed.profiles and "intro" in allowed.reservations
    with pytest.raises(InvalidCourse) as caught:
        check_requests(course(), site, {"demo26": plain, "demo21": attendee})
    assert caught.value.field == "ends_at" and "member 'demo21'" in str(caught.value)


def test_a_profile_kept_to_other_groups_stays_theirs(site):
    plain = member(site, "demo26", {"factorylab-users"})
    assert (
        "course-gpu" not in course_entitlements(plain, course(profile="course-gpu"), site).profiles
    )
    with pytest.raises(InvalidCourse) as caught:
        check_requests(course(profile="course-gpu"), site, {"demo26": plain})
    assert caught.value.field == "profile" and "not a profile you can use" in str(caught.value)


def test_a_course_request_is_checked_like_any_session(site):
    plain = member(site, "demo26", {"factorylab-users"})
    with pytest.raises(InvalidCourse, match="profile: member 'demo26' cannot have it: gpus"):
        check_requests(course(profile={"partition": "gpu", "gpus": 64}), site, {"demo26": plain})
