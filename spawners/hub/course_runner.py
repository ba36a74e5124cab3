"""The course runner: a hub-managed service that pre-starts and stops course sessions.

Every few seconds it reads the courses and the active servers from the hub's REST API
and acts on :func:`spawners.session.courses.plan_tick`: from a course's pre-start it
starts each member's course session (a few at a time), keeps them going until the
course starts, and stops them at its end. It keeps no state of its own: after a hub
restart (which restarts it) it looks again, finishes what was not done, and never
starts a session twice, because a member with a server is never started again.

Run by the hub (see :func:`course_runner_service`); ``python -m spawners.hub.course_runner``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from spawners.session.courses import Control, plan_tick, utcnow
from spawners.site.course_sections import Course
from spawners.site.model import Site

RUNNER_SERVICE = "factorylab-course-runner"
RUNNER_SCOPES = ["list:users", "read:users", "read:servers", "admin:servers"]
TICK_SECONDS = 5
PAGE = 200

log = logging.getLogger(RUNNER_SERVICE)


def course_runner_service(site: Site, python: str) -> dict:
    """The hub-managed service entry that runs the course runner."""
    return {
        "name": RUNNER_SERVICE,
        "command": [python, "-m", "spawners.hub.course_runner"],
        "environment": {"FACTORYLAB_COURSE_STARTS_AT_ONCE": str(site.slurm.course_starts_at_once)},
    }


def active_servers(users: list[dict], name: str) -> dict[str, bool]:
    """Members with a server called ``name``: whether each is ready (not starting/stopping).

    >>> active_servers([{"name": "a", "servers": {"c": {"ready": True, "pending": None}}},
    ...                 {"name": "b", "servers": {"c": {"ready": False, "pending": "spawn"}}},
    ...                 {"name": "d", "servers": {"": {"ready": True}}}], "c")
    {'a': True, 'b': False}
    """
    active = {}
    for user in users:
        server = (user.get("servers") or {}).get(name)
        if server is not None:
            active[user["name"]] = bool(server.get("ready")) and not server.get("pending")
    return active


class HubClient:
    """The hub's REST API with this service's token (and client certificate, if any)."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.token = token
        self.http = AsyncHTTPClient()
        self.tls = {
            key: os.environ[variable]
            for key, variable in (
                ("client_key", "JUPYTERHUB_SSL_KEYFILE"),
                ("client_cert", "JUPYTERHUB_SSL_CERTFILE"),
                ("ca_certs", "JUPYTERHUB_SSL_CLIENT_CA"),
            )
            if os.environ.get(variable)
        }

    async def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        request = HTTPRequest(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
            body=None if body is None and method in ("GET", "DELETE") else json.dumps(body or {}),
            request_timeout=60,
            **self.tls,
        )
        response = await self.http.fetch(request, raise_error=False)
        if response.code == 599:
            raise OSError(f"the hub did not answer: {response.error}")
        text = response.body.decode("utf-8", "replace") if response.body else ""
        try:
            return response.code, json.loads(text) if text else None
        except ValueError:
            return response.code, text

    async def active_users(self) -> list[dict]:
        users: list[dict] = []
        while True:
            code, page = await self.call("GET", f"/users?state=active&offset={len(users)}")
            if code != 200 or not isinstance(page, list):
                raise OSError(f"listing the active users gave {code}")
            users += page
            if len(page) < PAGE:
                return users


#: A member whose start was refused is tried again after this long (seconds), so that
#: one refusal never holds the others' places in the pacing.
RETRY_AFTER = 60
_refused: dict[tuple[str, str], float] = {}  # (course, member) -> when to try again


async def start(hub: HubClient, user: str, course: str) -> None:
    try:
        code, answer = await hub.call("POST", f"/users/{quote(user)}/servers/{course}", {})
    except OSError as exc:
        code, answer = 599, str(exc)
    if code in (201, 202):
        log.info("Course %s: started %s's session", course, user)
        _refused.pop((course, user), None)
    else:
        _refused[(course, user)] = time.monotonic() + RETRY_AFTER
        log.warning("Course %s: %s's session did not start (%s): %s", course, user, code, answer)


def waiting_to_retry(course: str, members: list[str]) -> set[str]:
    """Members of ``course`` whose last start was refused a moment ago."""
    now = time.monotonic()
    return {user for user in members if _refused.get((course, user), 0) > now}


async def stop(hub: HubClient, user: str, course: str) -> None:
    code, answer = await hub.call("DELETE", f"/users/{quote(user)}/servers/{course}")
    if code in (202, 204):
        log.info("Course %s: stopped %s's session", course, user)
    elif code != 400:  # 400: already stopping
        log.warning("Course %s: %s's session did not stop (%s): %s", course, user, code, answer)


async def tick(hub: HubClient, budget: int) -> None:
    """Look at every course once and act."""
    code, listing = await hub.call("GET", "/factorylab/courses")
    if code != 200 or not isinstance(listing, dict):
        raise OSError(f"listing the courses gave {code}: {listing}")
    users = await hub.active_users()
    for entry in listing["courses"]:
        try:
            await run_course(hub, entry, users, budget)
        except (OSError, HTTPClientError, KeyError, ValueError) as exc:  # the others go on
            log.warning("Course %s: %s", entry.get("name"), exc)


async def run_course(hub: HubClient, entry: dict, users: list[dict], budget: int) -> None:
    """One course's tick: stop, seat and start as :func:`plan_tick` says."""
    fields = {key: entry[key] for key in Course.model_fields if key in entry}
    course = Course.model_validate(fields)
    members = entry["resolved_members"]
    active = active_servers(users, course.name)
    retrying = waiting_to_retry(course.name, members)
    plan = plan_tick(
        course,
        [user for user in members if user not in retrying],
        {user: ready for user, ready in active.items() if user in members},
        Control.from_dict(entry.get("control") or {}),
        utcnow(),
        budget,
        # a member whose start was refused is not done: tried again once the wait is over
        seated=[user for user in entry.get("seated") or () if (course.name, user) not in _refused],
    )
    await asyncio.gather(*(stop(hub, user, course.name) for user in plan.stop))
    if plan.start:  # members' records first: a member's own servers never keep them out
        await hub.call(
            "POST", f"/factorylab/courses/{course.name}/seats", {"users": list(plan.start)}
        )
    await asyncio.gather(*(start(hub, user, course.name) for user in plan.start))
    if entry.get("phase") == "ended" and entry.get("seated"):
        await hub.call("POST", f"/factorylab/courses/{course.name}/release", {})
    if course.open and entry.get("phase") in ("warming", "running"):
        await warm_ready(hub, course.name, {user for user, ready in active.items() if ready})


_warmed: set[tuple[str, str]] = set()  # (course, member): its landing notebook is warm


async def warm_ready(hub: HubClient, course: str, ready: set[str]) -> None:
    """Have the hub warm the landing notebook of each ready session not yet warmed (a
    session that stopped is warmed again when it is back)."""
    for key in [key for key in _warmed if key[0] == course and key[1] not in ready]:
        _warmed.discard(key)
    todo = sorted(user for user in ready if (course, user) not in _warmed)
    if not todo:
        return
    code, answer = await hub.call("POST", f"/factorylab/courses/{course}/warm", {"users": todo})
    results = answer.get("warmed", {}) if code == 200 and isinstance(answer, dict) else {}
    for user, how in results.items():
        if how == "warm":
            _warmed.add((course, user))
        else:
            log.warning("Course %s: %s's notebook was not warmed: %s", course, user, how)


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(name)s %(asctime)s] %(message)s")
    hub = HubClient(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    budget = int(os.environ.get("FACTORYLAB_COURSE_STARTS_AT_ONCE", "10"))
    while True:
        try:
            await tick(hub, budget)
        except (OSError, HTTPClientError, KeyError, ValueError) as exc:
            log.warning("Course runner: %s; trying again in %s s", exc, TICK_SECONDS)
        await asyncio.sleep(TICK_SECONDS)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
