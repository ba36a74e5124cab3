"""What the hub does inside members' running course sessions, through the proxy, with a
token it makes for that one server and deletes after: nothing it holds reaches any
other server.

- **Re-pull** the material with nbgitpuller's own endpoint (its merge rules keep what
  members changed).
- **Warm** the notebook members land in: its Jupyter session is made (and its kernel
  started) before they arrive, and JupyterLab, opening that notebook, joins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import posixpath
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlencode

from jupyterhub import orm
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from spawners.hub.course_seats import course_spawner
from spawners.session.courses import members_of
from spawners.site.course_sections import Course
from spawners.site.model import Site

CALL_TIMEOUT = 120
CONCURRENT_CALLS = 8

#: One call into a member's session: (its base URL, a token for it) -> a word on how it went.
SessionCall = Callable[[str, str], Awaitable[str]]


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


async def fetch(url: str, token: str, method: str = "GET", body: dict | None = None) -> str:
    """One request into a session: its body, or an error for anything but 2xx."""
    request = HTTPRequest(
        url,
        method=method,
        headers={"Authorization": f"token {token}"},
        body=None if body is None else json.dumps(body),
        request_timeout=CALL_TIMEOUT,
        follow_redirects=False,
    )
    response = await AsyncHTTPClient().fetch(request)
    return response.body.decode("utf-8", "replace")


async def call_member(handler, site: Site, course: Course, name: str, call: SessionCall) -> str:
    """Run ``call`` against ``name``'s running course session; a word on how it went."""
    user = handler.find_user(name)
    spawner = course_spawner(user, course.name)
    if spawner is None or not spawner.ready:
        return "not running"
    token = user.new_api_token(
        scopes=[f"access:servers!server={name}/{course.name}"],
        expires_in=CALL_TIMEOUT * 2 + 60,
        note=f"factorylab: course {course.name}",
    )
    base = f"{site.hub.public_url.rstrip('/')}/user/{quote(name)}/{course.name}"
    try:
        return await call(base, token)
    except (HTTPClientError, OSError, ValueError, KeyError) as exc:
        return f"failed: {exc}"
    finally:
        used = orm.APIToken.find(handler.db, token)
        if used is not None:
            handler.db.delete(used)
            handler.db.commit()


async def call_members(
    handler, site: Site, course: Course, call: SessionCall, names: list[str] | None = None
) -> dict[str, str]:
    """Run ``call`` in each (or each named) member's running course session, a few at a
    time; how it went for each."""
    limit = asyncio.Semaphore(CONCURRENT_CALLS)
    chosen = members_of(course) if names is None else sorted(set(names) & set(members_of(course)))

    async def one(name: str) -> tuple[str, str]:
        async with limit:
            return name, await call_member(handler, site, course, name, call)

    return dict(await asyncio.gather(*(one(name) for name in chosen)))


def pull(course: Course) -> SessionCall:
    """Re-pull the material with nbgitpuller's endpoint in the session."""

    async def call(base: str, token: str) -> str:
        query = {"repo": course.material, "targetpath": course.folder}
        if course.material_branch:
            query["branch"] = course.material_branch
        event = last_event(await fetch(f"{base}/git-pull/api?{urlencode(query)}", token))
        if event.get("phase") == "finished":
            return "pulled"
        return f"failed: {event.get('message') or 'nbgitpuller gave no answer'}"

    return call


def warm(course: Course) -> SessionCall:
    """Make the Jupyter session of the notebook members land in, with the kernel its
    metadata names (the server's default kernel if none); an existing one is kept."""

    async def call(base: str, token: str) -> str:
        path = f"{course.folder}/{course.open}"
        with contextlib.suppress(HTTPClientError):  # a session may already have it
            for existing in json.loads(await fetch(f"{base}/api/sessions", token)):
                if existing.get("path") == path:
                    return "warm"
        notebook = json.loads(await fetch(f"{base}/api/contents/{quote(path)}?content=1", token))
        kernel = ((notebook.get("content") or {}).get("metadata") or {}).get("kernelspec") or {}
        body = {"path": path, "name": posixpath.basename(path), "type": "notebook"}
        body["kernel"] = {"name": kernel["name"]} if kernel.get("name") else {}
        await fetch(f"{base}/api/sessions", token, "POST", body)
        return "warm"

    return call
