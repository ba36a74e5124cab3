"""The endpoint a session job uses to tell the hub which port its server listens on.

It accepts exactly ``{"port": <int 1024-65535>}``, authenticated with the calling
server's own API token, and hands the port to that server's spawner. Anything else
is answered 400 and changes nothing. batchspawner's own handler, which sets any
attribute a job posts, is removed from the hub's routes.
"""

from __future__ import annotations

import hmac
import json

from jupyterhub import apihandlers
from jupyterhub.apihandlers import APIHandler
from tornado import web

PORT_RANGE = (1024, 65535)
ROUTE = r"/api/factorylab/port"


def remove_batchspawner_handler() -> int:
    """Drop batchspawner's ``/api/batchspawner`` route; return how many were removed.

    ``import batchspawner`` appends that route to JupyterHub's default API handlers as
    a side effect. :func:`spawners.hub.config.configure_hub` calls this while the hub
    loads its config, before ``init_handlers`` builds the routes. It is not done at
    import time because JupyterHub imports every installed spawner at start-up, and
    a hub that really uses plain batchspawner needs the route.
    """
    before = len(apihandlers.default_handlers)
    apihandlers.default_handlers[:] = [
        route
        for route in apihandlers.default_handlers
        if not route[0].endswith("/api/batchspawner")
    ]
    return before - len(apihandlers.default_handlers)


def parse_port_body(body: bytes) -> int:
    """Return the port from a request body, or raise ``ValueError`` saying what is wrong."""
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ValueError('the body must be JSON: {"port": <integer>}') from None
    if not isinstance(data, dict) or set(data) != {"port"}:
        raise ValueError('the body must be exactly {"port": <integer>}')
    port = data["port"]
    if isinstance(port, bool) or not isinstance(port, int):
        raise ValueError("port must be an integer")
    low, high = PORT_RANGE
    if not low <= port <= high:
        raise ValueError(f"port must be between {low} and {high}")
    return port


def _is_own_token(candidate, token: str, token_id: int) -> bool:
    """Whether the request's token is ``candidate``'s server token.

    The hub knows a server's plain token only until it restarts; after that the
    session is recognised by the token's database id, which its state keeps.
    """
    if candidate.api_token:
        return hmac.compare_digest(candidate.api_token, token)
    owns = getattr(candidate, "owns_token", None)
    return bool(token_id and owns is not None and owns(token_id))


def own_spawner(handler: APIHandler, needs: str):
    """The spawner whose own server token authenticated ``handler``'s request.

    Raises 403 for any other token (a user's, an admin's, another server's), or when
    the spawner has no attribute ``needs``.
    """
    token = handler.get_auth_token() or ""
    orm_token = handler.get_token() if token else None
    token_id = orm_token.id if orm_token is not None else 0
    for candidate in getattr(handler.current_user, "spawners", {}).values():
        if _is_own_token(candidate, token, token_id):
            if hasattr(candidate, needs):
                return candidate
            break
    raise web.HTTPError(403, "only a FactoryLab session's own server token may call this")


class PortReportHandler(APIHandler):
    """``POST /hub/api/factorylab/port`` from a session job."""

    @web.authenticated
    async def post(self) -> None:
        spawner = own_spawner(self, "accept_port")
        try:
            port = parse_port_body(self.request.body)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        if not spawner.accept_port(port):
            raise web.HTTPError(409, "this server is not waiting for a port")
        self.set_status(201)
        self.finish(json.dumps({"port": port}))


#: The most of a failing job's log the hub takes: its last lines, at most this many bytes.
LOG_TAIL_BYTES = 64 * 1024


def parse_log_tail_body(body: bytes, lines: int = 20) -> str:
    r"""The printable last ``lines`` lines of ``{"log_tail": "..."}``; ValueError otherwise.

    >>> parse_log_tail_body(json.dumps({"log_tail": "a\nb\x1b[31m\nc"}).encode(), lines=2)
    'b[31m\nc'
    """
    if len(body) > 2 * LOG_TAIL_BYTES:
        raise ValueError(f"the log tail must be at most {LOG_TAIL_BYTES} bytes")
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ValueError('the body must be JSON: {"log_tail": <text>}') from None
    if (
        not isinstance(data, dict)
        or set(data) != {"log_tail"}
        or not isinstance(data["log_tail"], str)
    ):
        raise ValueError('the body must be exactly {"log_tail": <text>}')
    kept = data["log_tail"][-LOG_TAIL_BYTES:].splitlines()[-lines:]
    return "\n".join("".join(ch for ch in line if ch.isprintable()) for line in kept)


class FailureReportHandler(APIHandler):
    """``POST /hub/api/factorylab/failure``: a failing job's launcher sends its log tail.

    The job's log lives in the user's private home, where the hub never reads: the
    launcher, which runs as the user, sends the last lines when the server fails to start.
    """

    @web.authenticated
    async def post(self) -> None:
        spawner = own_spawner(self, "accept_log_tail")
        try:
            text = parse_log_tail_body(self.request.body)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        if not spawner.accept_log_tail(text):
            raise web.HTTPError(409, "this server has no session job")
        self.set_status(204)
        self.finish()


class EndedReportHandler(APIHandler):
    """``POST /hub/api/factorylab/ended``: the session's server has exited.

    The launcher holds the freed port meanwhile, and the hub drops the proxy's route at
    once rather than at its next queue snapshot: no other user on the node can bind the
    port and receive the user's requests (and their cookie) in between. The session is
    marked stopped, with why it ended, by the next poll as before.
    """

    @web.authenticated
    async def post(self) -> None:
        spawner = own_spawner(self, "slurm_session")
        if spawner.ready:
            self.log.info(
                "%s's server %r exited; dropping its route", spawner.user.name, spawner.name
            )
            await self.proxy.delete_user(self.current_user, spawner.name)
            session = spawner.slurm_session()
            if session is not None:
                session.server_exited()  # the next poll then marks it stopped, with why
        self.set_status(204)
        self.finish()


def handlers() -> list[tuple[str, type]]:
    """Routes to add with ``c.JupyterHub.extra_handlers``."""
    return [
        (ROUTE, PortReportHandler),
        (r"/api/factorylab/failure", FailureReportHandler),
        (r"/api/factorylab/ended", EndedReportHandler),
    ]
