"""A course's pages: each member's state for the instructor view, and the landing."""

import time
from datetime import timedelta
from types import SimpleNamespace

from spawners.hub import course_book, course_pages
from spawners.hub.course_pages import course_landing, member_state
from spawners.session.courses import utcnow
from spawners.slurm.queue import Snapshot

from ..session.test_courses import course
from .test_observability import _job


def spawner(active=True, ready=True, job_id="", activity=0.0, ended=""):
    session = SimpleNamespace(
        job_id=job_id,
        session_request=None,
        accepted_options={"profile": "lab"},
        kernel_activity=activity,
        submitted_at=0,
    )
    return SimpleNamespace(
        active=active,
        ready=ready,
        pending=None if ready or not active else "spawn",
        slurm_session=lambda: session,
        ended_message=ended,
    )


def test_each_state_an_instructor_reads():
    now = time.time()
    today = course(starts_at=utcnow(), ends_at=utcnow() + timedelta(hours=1))
    jobs = {
        "1": _job("1", "RUNNING", host="c01"),
        "2": _job("2", "PENDING", reason="Resources"),
        "3": _job("3", "RUNNING", host="c02"),
    }
    snapshot = Snapshot(jobs=jobs, pending_order={"gpu": ["2"]})
    rows = {
        "none": member_state(None, snapshot, "a", today),
        "ended": member_state(
            spawner(active=False, ended="Your session ended at the course's end."),
            snapshot,
            "a",
            today,
        ),
        "starting": member_state(spawner(ready=False), snapshot, "a", today),
        "pending": member_state(spawner(ready=False, job_id="2"), snapshot, "a", today),
        "running": member_state(spawner(job_id="1", activity=now - 10), snapshot, "a", today),
        "idle": member_state(spawner(job_id="3", activity=now - 900), snapshot, "a", today),
    }
    assert {key: row["state"] for key, row in rows.items()} == {
        "none": "not started",
        "ended": "ended",
        "starting": "starting",
        "pending": "pending",
        "running": "running",
        "idle": "idle",
    }
    assert rows["pending"]["detail"] == "Resources, 1 in line"
    assert rows["running"]["node"] == "c01" and 3590 <= rows["running"]["time_left"] <= 3600
    assert rows["idle"]["detail"] == "idle 15 min"
    assert rows["ended"]["detail"].startswith("Your session ended")
    over = course(starts_at=utcnow() - timedelta(hours=2), ends_at=utcnow() - timedelta(hours=1))
    assert member_state(None, snapshot, "a", over)["state"] == "ended"  # its record removed


def test_members_land_in_their_open_course(monkeypatch, site):
    now = utcnow()
    open_course = course(starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1))
    later = course(
        name="later", starts_at=now + timedelta(hours=3), ends_at=now + timedelta(hours=4)
    )
    book = SimpleNamespace(courses=lambda site: {"intro": open_course, "later": later})
    monkeypatch.setattr(course_pages, "cached_site", lambda *args: site)
    monkeypatch.setattr(course_book, "shared_course_book", lambda site: book)
    landing = course_landing("/etc/factorylab/site.yaml")

    def handler(name):
        user = SimpleNamespace(name=name) if name else None
        return SimpleNamespace(current_user=user, hub=SimpleNamespace(base_url="/hub/"))

    assert landing(handler("demo26")) == "/hub/course/intro"
    assert landing(handler("demo40")) == ""  # an instructor, not a member
    assert landing(handler(None)) == ""
