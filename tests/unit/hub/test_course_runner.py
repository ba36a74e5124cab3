"""The course runner: each tick reads the hub and starts or stops course sessions."""

from datetime import timedelta

import pytest

from spawners.hub import course_runner
from spawners.hub.course_runner import course_runner_service, tick
from spawners.session.courses import utcnow

from ..session.test_courses import MEMBERS, course


class FakeHub:
    """The hub's REST API as the runner sees it, recording what it is asked to do."""

    def __init__(self, courses, users):
        self.courses, self.users = courses, users
        self.calls = []

    async def call(self, method, path, body=None):
        self.calls.append((method, path))
        if path == "/factorylab/courses":
            return 200, {"courses": self.courses}
        return (202 if method == "POST" else 204), {}

    async def active_users(self):
        return self.users


def entry(c, **extra):
    return {
        **c.model_dump(mode="json"),
        "resolved_members": MEMBERS,
        "control": {"held": False, "start_requested_at": 0},
        **extra,
    }


async def test_a_warming_course_starts_its_members_a_few_at_a_time():
    now = utcnow()
    warming = course(starts_at=now + timedelta(minutes=5), ends_at=now + timedelta(hours=1))
    users = [
        {"name": "demo26", "servers": {"intro": {"ready": True, "pending": None}}},
        {"name": "demo27", "servers": {"intro": {"ready": False, "pending": "spawn"}}},
        {"name": "demo40", "servers": {"intro": {"ready": True}}},  # not a member
    ]
    hub = FakeHub([entry(warming)], users)
    await tick(hub, budget=3)
    posts = [path for method, path in hub.calls if method == "POST"]
    assert posts == [
        "/factorylab/courses/intro/seats",  # members' records first, past any limit
        "/users/demo28/servers/intro",
        "/users/demo29/servers/intro",
    ]


async def test_an_ended_course_stops_every_session():
    now = utcnow()
    ended = course(starts_at=now - timedelta(hours=2), ends_at=now - timedelta(seconds=1))
    users = [{"name": name, "servers": {"intro": {"ready": True}}} for name in MEMBERS[:3]]
    hub = FakeHub([entry(ended, phase="ended", seated=MEMBERS[:3])], users)
    await tick(hub, budget=3)
    deletes = sorted(path for method, path in hub.calls if method == "DELETE")
    assert deletes == [f"/users/{name}/servers/intro" for name in MEMBERS[:3]]
    assert ("POST", "/factorylab/courses/intro/release") in hub.calls
    quiet = FakeHub([entry(ended, phase="ended", seated=[])], [])
    await tick(quiet, budget=3)
    assert [method for method, _ in quiet.calls] == ["GET"]  # nothing left to do


async def test_a_refused_listing_is_an_error_the_loop_reports():
    class Refusing(FakeHub):
        async def call(self, method, path, body=None):
            return 403, {"message": "no"}

    with pytest.raises(OSError, match="listing the courses gave 403"):
        await tick(Refusing([], []), budget=1)


def test_the_service_entry(site):
    service = course_runner_service(site, "/opt/hub/bin/python")
    assert service["command"] == ["/opt/hub/bin/python", "-m", "spawners.hub.course_runner"]
    assert service["environment"]["FACTORYLAB_COURSE_STARTS_AT_ONCE"] == "4"
    assert "admin:servers" in course_runner.RUNNER_SCOPES


async def test_ready_sessions_of_a_course_with_a_landing_notebook_are_warmed_once():
    now = utcnow()
    opened = course(
        starts_at=now + timedelta(minutes=5),
        ends_at=now + timedelta(hours=1),
        material="/srv/m.git",
        open="lesson/01.ipynb",
    )
    users = [
        {"name": "demo26", "servers": {"intro": {"ready": True}}},
        {"name": "demo27", "servers": {"intro": {"ready": False, "pending": "spawn"}}},
    ]

    class Warming(FakeHub):
        async def call(self, method, path, body=None):
            if path.endswith("/warm"):
                self.calls.append((method, path, tuple(body["users"])))
                return 200, {"warmed": {user: "warm" for user in body["users"]}}
            return await super().call(method, path, body)

    hub = Warming([entry(opened, phase="warming")], users)
    await tick(hub, budget=1)
    await tick(hub, budget=1)  # demo26 is warm already: asked once
    warms = [call for call in hub.calls if call[1].endswith("/warm")]
    assert warms == [("POST", "/factorylab/courses/intro/warm", ("demo26",))]
