"""A course from end to end on the real cluster: defined through the admin API, its
reservation made with scontrol, its material a git repository, ten members pre-started
by the course runner (through a hub restart), the instructor view in Chromium, a
re-pull that keeps a member's edit, the landing after login, and the stop at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright

from ..support.browser import ARTIFACTS, chromium
from ..support.hub import HUB_URL, Hub, demo_password, login, proxied
from ..support.services import service

MEMBERS = [f"demo{n:02d}" for n in range(26, 36)]
INSTRUCTOR = "demo36"  # not a member
OUTSIDER = "demo37"
MATERIAL_ROOT = Path("/srv/factorylab-test-material")
API = "/factorylab/courses"


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.email=admin@factorylab", "-c", "user.name=admin", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def material():
    """A course repository owned by root, readable by all (as an admin would make it)."""
    shutil.rmtree(MATERIAL_ROOT, ignore_errors=True)
    work = MATERIAL_ROOT / "work"
    (work / "lesson").mkdir(parents=True)
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "first",
                "metadata": {},
                "outputs": [],
                "source": ["print('course', 6 * 7)"],
            }
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (work / "lesson" / "01-start.ipynb").write_text(json.dumps(notebook))
    (work / "README.md").write_text("# Intro\n")
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "Lesson 1", cwd=work)
    git("clone", "-q", "--bare", str(work), str(MATERIAL_ROOT / "intro.git"), cwd=MATERIAL_ROOT)
    subprocess.run(["chmod", "-R", "a+rX", str(MATERIAL_ROOT)], check=True)
    yield MATERIAL_ROOT / "intro.git"
    shutil.rmtree(MATERIAL_ROOT, ignore_errors=True)


@pytest.fixture(scope="module")
def reservation():
    """A Slurm reservation on one node of partition lab for the members (20 minutes)."""
    name = f"course-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        [
            "scontrol", "create", "reservation", f"ReservationName={name}", "StartTime=now",
            "Duration=20", f"Users={','.join(MEMBERS)}", "PartitionName=lab", "NodeCnt=1",
            "Flags=IGNORE_JOBS",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    yield name
    # Slurm keeps a reservation that still has jobs: end them, then delete it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        subprocess.run(["scancel", f"--reservation={name}"], capture_output=True)
        gone = subprocess.run(
            ["scontrol", "delete", f"ReservationName={name}"], capture_output=True
        )
        if gone.returncode == 0:
            break
        time.sleep(2)


@pytest.fixture
def course_name(hub: Hub):
    name = f"intro-{uuid.uuid4().hex[:6]}"
    yield name
    hub.api("DELETE", f"{API}/{name}")  # stops the members' sessions, removes their records
    # a refused start leaves JupyterHub's record of the server: the outsider's counts
    # against their own named-server limit until removed
    hub.api("DELETE", f"/users/{OUTSIDER}/servers/{name}", json={"remove": True})


def definition(name: str, reservation: str, material: Path, starts_in: float, lasts: float):
    now = datetime.now(UTC)
    return {
        "name": name,
        "title": "Intro to the AI Factory",
        "members": MEMBERS,
        "instructors": [INSTRUCTOR],
        "profile": "lab",
        "reservation": reservation,
        "prestart_minutes": 1,
        "starts_at": (now + timedelta(seconds=starts_in)).isoformat(),
        "ends_at": (now + timedelta(seconds=starts_in + lasts)).isoformat(),
        "material": str(material),
        "open": "lesson/01-start.ipynb",
    }


def test_each_bad_definition_is_a_400_that_names_the_field(hub, reservation, material, course_name):
    good = definition(course_name, reservation, material, 600, 600)
    unadmitted = subprocess.run(
        ["scontrol", "create", "reservation", f"ReservationName={reservation}-few",
         "StartTime=now", "Duration=30", "Users=demo26", "PartitionName=lab", "NodeCnt=1",
         "Flags=IGNORE_JOBS"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert unadmitted.returncode == 0
    try:
        cases = [
            ({"members": [*MEMBERS, "ghost42"]}, "members: 'ghost42' is not a user"),
            ({"ends_at": good["starts_at"]}, "ends_at: "),
            ({"profile": "no-such-profile"}, "profile: 'no-such-profile' is not one of"),
            ({"name": "intro; rm -rf ~"}, "name: 'intro; rm -rf ~' has unsafe characters"),
            ({"reservation": "no-such-reservation"}, "reservation: 'no-such-reservation' is not"),
            ({"reservation": f"{reservation}-few"}, "reservation: "),
            ({"starts_at": "2026-12-01T09:00:00"}, "starts_at: "),
        ]
        for change, words in cases:
            answer = hub.api("POST", API, json={**good, **change})
            assert answer.status_code == 400, (change, answer.text)
            assert answer.json()["message"].startswith(words), answer.json()["message"]
        assert (
            "does not admit member 'demo27'"
            in hub.api("POST", API, json={**good, "reservation": f"{reservation}-few"}).json()[
                "message"
            ]
        )
    finally:
        subprocess.run(["scontrol", "delete", f"ReservationName={reservation}-few"], check=False)
    assert hub.api("GET", f"{API}/{course_name}").status_code == 404  # nothing was kept


def course_jobs(name: str) -> list[dict]:
    """The factorylab jobs of the members in the queue: user, state, reservation, end."""
    out = subprocess.run(
        ["squeue", "-h", "--name=factorylab", "-u", ",".join(MEMBERS), "-o", "%i %u %T %v %e"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [dict(zip(("id", "user", "state", "reservation", "end"), row.split(), strict=True))
            for row in out.splitlines()]  # fmt: skip


def servers(hub: Hub, name: str) -> dict[str, dict]:
    found = {}
    for user in MEMBERS:
        model = hub.api("GET", f"/users/{user}")
        if model.status_code == 200 and name in model.json()["servers"]:
            found[user] = model.json()["servers"][name]
    return found


def wait_for(what, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s: {what.__doc__ or what}")


def test_a_ten_member_course_from_creation_to_its_end(hub, reservation, material, course_name):
    body = definition(course_name, reservation, material, starts_in=120, lasts=180)
    created = hub.api("POST", API, json=body)
    assert created.status_code == 201, created.text
    course = created.json()
    starts_at = datetime.fromisoformat(course["starts_at"])
    ends_at = datetime.fromisoformat(course["ends_at"])
    prestart_at = datetime.fromisoformat(course["prestart_at"])
    assert course["phase"] == "scheduled" and course["resolved_members"] == MEMBERS

    # Before the pre-start: a member is told when it opens; an outsider may never start it.
    early = hub.api("POST", f"/users/{MEMBERS[0]}/servers/{course_name}", json={})
    assert early.status_code == 400 and "opens at" in early.json()["message"]
    outsider_token = hub.user_token(OUTSIDER)
    refused = requests.post(
        f"{HUB_URL}/hub/api/users/{OUTSIDER}/servers/{course_name}",
        headers={"Authorization": f"token {outsider_token}"},
        json={"profile": "lab"},
        timeout=30,
    )
    assert refused.status_code == 403, refused.text
    assert "You are not a member of the course" in refused.json()["message"]
    browser, _ = login(OUTSIDER, demo_password())
    xsrf = browser.cookies.get("_xsrf")
    form = browser.post(
        f"{HUB_URL}/hub/spawn/{OUTSIDER}/{course_name}",
        data={"profile": "lab", "_xsrf": xsrf},
        timeout=60,
    )
    assert form.status_code == 403 and "You are not a member of the course" in form.text
    link = browser.get(f"{HUB_URL}/hub/course/{course_name}", timeout=30)
    assert link.status_code == 403 and "ask its instructor to add you" in link.text
    assert course_jobs(course_name) == []

    # The pre-start: the runner starts the members a few at a time. The hub restarts in
    # the middle of it, and nothing is lost or started twice.
    time.sleep(max(0.0, (prestart_at - datetime.now(UTC)).total_seconds()) + 4)
    service("restart", "hub", check=True)
    hub.wait_until_up(timeout=60)

    def all_ready():
        """all ten course sessions ready"""
        found = servers(hub, course_name)
        return len(found) == len(MEMBERS) and all(s["ready"] for s in found.values())

    wait_for(all_ready, timeout=(starts_at - datetime.now(UTC)).total_seconds() + 1)
    assert datetime.now(UTC) <= starts_at + timedelta(seconds=1)
    jobs = course_jobs(course_name)
    assert sorted(job["user"] for job in jobs) == MEMBERS  # one job each, never two
    assert {job["reservation"] for job in jobs} == {reservation}
    for job in jobs:  # the job ends with the course, so the Lab warns before its end
        end = datetime.fromisoformat(job["end"]).astimezone()
        assert ends_at - timedelta(seconds=62) <= end <= ends_at + timedelta(seconds=15), job
    # Slurm's accounting: one running job per member. A start in flight when the hub
    # stopped is ended by the restarted hub (it cannot take over a half-made spawn) and
    # done again by the runner: never two sessions for one member.
    since = (prestart_at - timedelta(seconds=5)).astimezone().strftime("%Y-%m-%dT%H:%M:%S")

    def accounted():
        """sacct has every member's one running job (slurmdbd hears of starts late)"""
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "--name=factorylab", "-u", ",".join(MEMBERS), "-S",
             since, "-o", "JobID,User,State,Reservation"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        rows = [row.split("|") for row in out]
        rows = [row for row in rows if row[3] == reservation]
        running = sorted(user for _, user, state, _ in rows if state == "RUNNING")
        return rows if running == MEMBERS else None

    rows = wait_for(accounted, timeout=30)
    redone = [row for row in rows if row[2] != "RUNNING"]
    assert len(redone) <= 4, rows  # at most course_starts_at_once were in flight

    # The instructor's view, in Chromium: every member's state and time left.
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright, chromium(playwright) as page:
        page.goto(f"{HUB_URL}/hub/login?next=/hub/factorylab/courses/{course_name}")
        page.fill("#username_input", INSTRUCTOR)
        page.fill("#password_input", demo_password())
        page.click("#login_submit")
        page.wait_for_selector("#fl-members")
        states = page.locator("#fl-members tbody tr").evaluate_all(
            "rows => rows.map(r => [r.dataset.user, r.dataset.state])"
        )
        page.screenshot(path=str(ARTIFACTS / "course-instructor-view.png"), full_page=True)
        assert dict(states) == {user: "running" for user in MEMBERS}

        # Stop all, from the page; then Start all brings every session back (paced).
        page.get_by_role("button", name="Stop all").click()
        page.get_by_text("Stopping every member's session.").wait_for(timeout=20_000)
        wait_for(lambda: not servers(hub, course_name), timeout=30)
        held = hub.api("POST", f"/users/{MEMBERS[0]}/servers/{course_name}", json={})
        assert held.status_code == 409 and "stopped its sessions" in held.json()["message"]
        page.get_by_role("button", name="Start all").click()
        page.get_by_text("Starting every member's session").wait_for(timeout=20_000)
        wait_for(all_ready, timeout=120)

    # The lesson members land in has its kernel already (the runner warmed it).
    member = MEMBERS[0]
    token = hub.user_token(member)
    lesson_path = f"courses/{course_name}/lesson/01-start.ipynb"

    def warmed():
        """the lesson's Jupyter session and kernel exist"""
        listed = proxied(hub, member, f"{course_name}/api/sessions", token).json()
        return [s for s in listed if s["path"] == lesson_path and s["kernel"]]

    wait_for(warmed, timeout=30)

    # A member's edit survives a re-pull of new material.
    readme = f"{course_name}/api/contents/courses/{course_name}/README.md"
    mine = {"type": "file", "format": "text", "content": "# Intro\nMy own notes\n"}
    assert proxied(hub, member, readme, token, "PUT", json=mine).status_code == 200
    work = MATERIAL_ROOT / "work"
    (work / "README.md").write_text("# Intro, revised by the instructor\n")
    (work / "lesson" / "02-next.py").write_text("print('lesson 2')\n")
    git("commit", "-qam", "Lesson 2", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "Lesson 2 file", cwd=work)
    git("push", "-q", str(material), "main", cwd=work)
    pulled = hub.api("POST", f"{API}/{course_name}/pull")
    assert pulled.status_code == 200 and set(pulled.json()["pulled"].values()) == {"pulled"}
    kept = proxied(hub, member, readme, token).json()["content"]
    assert kept == mine["content"], kept
    lesson = f"{course_name}/api/contents/courses/{course_name}/lesson/02-next.py"
    assert proxied(hub, member, lesson, token).status_code == 200

    # The course's card is on members' spawn forms only; a member who logs in lands in
    # their running Lab, on the material.
    outsider_form = login(OUTSIDER, demo_password())[0].get(f"{HUB_URL}/hub/spawn", timeout=60)
    assert outsider_form.status_code == 200 and 'id="fl-courses"' not in outsider_form.text
    member_form = login(MEMBERS[2], demo_password())[0].get(f"{HUB_URL}/hub/spawn", timeout=60)
    assert f'data-course="{course_name}"' in member_form.text
    browser, answer = login(MEMBERS[1], demo_password())
    landed = browser.get(f"{HUB_URL}{answer.headers['Location']}", timeout=60)
    assert re.search(
        rf"/user/{MEMBERS[1]}/{course_name}/lab/workspaces/{course_name}/tree/courses/"
        rf"{course_name}/lesson/01-start.ipynb$",
        landed.url,
    ), landed.url

    # The end: every session stops, and the view says so.
    def all_stopped():
        """no course session and no job left"""
        return not servers(hub, course_name) and not course_jobs(course_name)

    time.sleep(max(0.0, (ends_at - datetime.now(UTC)).total_seconds()))
    wait_for(all_stopped, timeout=40)
    browser, _ = login(INSTRUCTOR, demo_password())
    view = browser.get(f"{HUB_URL}/hub/factorylab/courses/{course_name}", timeout=30)
    assert view.text.count('data-state="ended"') == len(MEMBERS), view.text
