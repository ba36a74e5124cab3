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
    a side effect. :func:`spawners.hub_setup.configure_hub` calls this while the hub
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


def own_spawner(handler: APIHandler, needs: str):
    """The spawner whose own server token authenticated ``handler``'s request.

    Raises 403 for any other token (a user's, an admin's, another server's), or when
    the spawner has no attribute ``needs``.
    """
    token = handler.get_auth_token() or ""
    for candidate in getattr(handler.current_user, "spawners", {}).values():
        if candidate.api_token and hmac.compare_digest(candidate.api_token, token):
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


def handlers() -> list[tuple[str, type]]:
    """Routes to add with ``c.JupyterHub.extra_handlers``."""
    return [(ROUTE, PortReportHandler)]
