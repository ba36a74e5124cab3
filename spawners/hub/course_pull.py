"""Re-pull a course's material into every running member session, through nbgitpuller's
own endpoint in each session (its merge rules keep what members changed).

The hub calls each session through the proxy with a token it makes for that one server
and deletes after: nothing it holds reaches any other server.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote, urlencode

from jupyterhub import orm
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from spawners.hub.course_seats import course_spawner
from spawners.session.courses import members_of
from spawners.site.course_sections import Course
from spawners.site.model import Site

PULL_TIMEOUT = 120
CONCURRENT_PULLS = 8


def last_event(body: str) -> dict:
    """The last ``data:`` event of nbgitpuller's event stream.

    >>> last_event('data: {"phase": "syncing"}\\n\\ndata: {"phase": "finished"}\\n\\n')
    {'phase': 'finished'}
    """
    events = [line[5:].strip() for line in body.splitlines() if line.startswith("data:")]
    for text in reversed(events):
        try:
            return json.loads(text)
        except ValueError:
            continue
    return {}


def pull_url(site: Site, user: str, course: Course) -> str:
    """nbgitpuller's endpoint in ``user``'s course session."""
    query = {"repo": course.material, "targetpath": course.folder}
    if course.material_branch:
        query["branch"] = course.material_branch
    base = site.hub.public_url.rstrip("/")
    return f"{base}/user/{quote(user)}/{course.name}/git-pull/api?{urlencode(query)}"


async def pull_one(handler, site: Site, course: Course, name: str) -> str:
    """Pull into one member's running session; a word on how it went."""
    user = handler.find_user(name)
    spawner = course_spawner(user, course.name)
    if spawner is None or not spawner.ready:
        return "not running"
    token = user.new_api_token(
        scopes=[f"access:servers!server={name}/{course.name}"],
        expires_in=PULL_TIMEOUT + 60,
        note=f"factorylab: re-pull of course {course.name}",
    )
    request = HTTPRequest(
        pull_url(site, name, course),
        headers={"Authorization": f"token {token}"},
        request_timeout=PULL_TIMEOUT,
        follow_redirects=False,
    )
    try:
        response = await AsyncHTTPClient().fetch(request)
        event = last_event(response.body.decode("utf-8", "replace"))
    except (HTTPClientError, OSError) as exc:
        return f"failed: {exc}"
    finally:
        used = orm.APIToken.find(handler.db, token)
        if used is not None:
            handler.db.delete(used)
            handler.db.commit()
    if event.get("phase") == "finished":
        return "pulled"
    return f"failed: {event.get('message') or 'nbgitpuller gave no answer'}"


async def pull_all(handler, course: Course, site: Site) -> dict[str, str]:
    """Re-pull into every member's running course session, a few at a time."""
    if not course.material:
        return {}
    limit = asyncio.Semaphore(CONCURRENT_PULLS)

    async def one(name: str) -> tuple[str, str]:
        async with limit:
            return name, await pull_one(handler, site, course, name)

    return dict(await asyncio.gather(*(one(name) for name in members_of(course))))
