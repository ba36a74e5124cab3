"""Hub endpoints about a running session: time left, extend, kernel activity, idle stop.

``/hub/api/factorylab/session`` (GET) and ``/session/extend`` (POST) answer a session's
own server token, that is the ``factorylab_session`` extension inside JupyterLab.
``/activity`` (POST) takes the session's kernel activity for the idle culler.
``/sessions`` (GET) lists the same facts for every running session, for admins.
``/idle-stop/USER[/SERVER]`` (POST) is how the idle culler records why it stops one.
"""

from __future__ import annotations

import json
import time

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from spawners.hub import observe
from spawners.hub.culler import IDLE_STOP_ROUTE
from spawners.hub.port_api import own_spawner
from spawners.session.idle import idle_message
from spawners.site.units import parse_walltime_seconds

#: A report claiming activity further in the future than this is refused.
CLOCK_SKEW = 120


def json_body(handler: APIHandler, allowed: set[str]) -> dict:
    """The request's JSON object, with only ``allowed`` keys; 400 otherwise."""
    try:
        data = json.loads(handler.request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPError(400, "the body must be a JSON object") from None
    if not isinstance(data, dict) or not set(data) <= allowed:
        keys = ", ".join(sorted(allowed)) or "no keys"
        raise web.HTTPError(400, f"the body must be a JSON object with {keys}")
    return data


def running_session(handler: APIHandler):
    """(the server's spawner, its running Slurm session) for a session's own token."""
    wrapper = own_spawner(handler, "slurm_session")
    session = wrapper.slurm_session()
    if session is None:
        raise web.HTTPError(404, "this server has no running session")
    return wrapper, session


def _save(handler: APIHandler, wrapper) -> None:
    wrapper.orm_spawner.state = wrapper.get_state()
    handler.db.commit()


class SessionFactsHandler(APIHandler):
    """``GET /hub/api/factorylab/session``: this session's time left and limits."""

    @web.authenticated
    async def get(self) -> None:
        _, session = running_session(self)
        self.finish(json.dumps(session.session_facts()))


class ExtendHandler(APIHandler):
    """``POST /hub/api/factorylab/session/extend``: ``{}`` or ``{"by": "00:30:00"}``."""

    @web.authenticated
    async def post(self) -> None:
        wrapper, session = running_session(self)
        data = json_body(self, {"by"})
        by = session.site.walltime.extend_by
        if "by" in data:
            try:
                by = parse_walltime_seconds(str(data["by"]))
            except ValueError as exc:
                raise web.HTTPError(400, f"by: {exc}") from None
        try:
            facts = await session.extend(by)
        except PermissionError as exc:
            observe.extended(session, "refused", by)
            raise web.HTTPError(400, str(exc)) from None
        except RuntimeError as exc:
            observe.extended(session, "failed", by)
            raise web.HTTPError(409, str(exc)) from None
        observe.extended(session, "ok", by)
        _save(self, wrapper)
        self.finish(json.dumps(facts))


class ActivityHandler(APIHandler):
    """``POST /hub/api/factorylab/activity``: ``{"kernel_activity": EPOCH, "busy": N}``."""

    @web.authenticated
    async def post(self) -> None:
        wrapper, session = running_session(self)
        data = json_body(self, {"kernel_activity", "busy"})
        stamp, busy = data.get("kernel_activity"), data.get("busy", 0)
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
            raise web.HTTPError(400, "kernel_activity must be a number (seconds since 1970)")
        if isinstance(busy, bool) or not isinstance(busy, int) or busy < 0:
            raise web.HTTPError(400, "busy must be a count of executing kernels")
        if stamp > time.time() + CLOCK_SKEW:
            raise web.HTTPError(400, "kernel_activity is in the future")
        session.record_kernel_activity(time.time() if busy else float(stamp))
        _save(self, wrapper)
        self.set_status(204)
        self.finish()


class SessionsHandler(APIHandler):
    """``GET /hub/api/factorylab/sessions``: every running session's facts (admins)."""

    @needs_scope("admin:servers")
    async def get(self) -> None:
        rows = []
        # every user with a server is loaded (at start-up, or when they spawned)
        for user in list(self.users.values()):
            for name, wrapper in user.spawners.items():
                session = getattr(wrapper, "slurm_session", lambda: None)()
                if session is not None and session.job_id:
                    rows.append({"user": user.name, "server": name, **session.session_facts()})
        self.finish(json.dumps({"sessions": rows}))


class IdleStopHandler(APIHandler):
    """``POST /hub/api/factorylab/idle-stop/USER[/SERVER]``: the culler says why."""

    @needs_scope("delete:servers")
    async def post(self, user_name: str, server_name: str = "") -> None:
        target = self.find_user(user_name)
        wrapper = target.spawners.get(server_name) if target else None
        session = wrapper.slurm_session() if wrapper is not None else None
        if session is None:
            raise web.HTTPError(404, f"{user_name} has no running session {server_name!r}")
        data = json_body(self, {"idle_seconds"})
        idle = data.get("idle_seconds")
        if isinstance(idle, bool) or not isinstance(idle, (int, float)) or idle < 0:
            raise web.HTTPError(400, "idle_seconds must be a non-negative number")
        gpus = session.session_request.gpus if session.session_request else 0
        session.ended_message = idle_message(idle, gpus)
        observe.culled(session, idle)
        self.log.info(
            "Idle culler stops %s/%s after %.0f s without kernel activity",
            user_name,
            server_name,
            idle,
        )
        _save(self, wrapper)
        self.set_status(204)
        self.finish()


def handlers() -> list[tuple[str, type]]:
    """Routes to add with ``c.JupyterHub.extra_handlers``."""
    return [
        (r"/api/factorylab/session", SessionFactsHandler),
        (r"/api/factorylab/session/extend", ExtendHandler),
        (r"/api/factorylab/activity", ActivityHandler),
        (r"/api/factorylab/sessions", SessionsHandler),
        (IDLE_STOP_ROUTE + r"/([^/]+)/?([^/]*)", IdleStopHandler),
    ]
