"""The idle culler: jupyterhub-idle-culler as a hub service, deciding per server.

It stops a server once the kernel activity in its saved state is older than the
server's own idle limit (:mod:`spawners.session.idle`), after telling the hub why.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time

from spawners.hub import state as saved
from spawners.site.model import Site

CULLER_SERVICE = "factorylab-idle-culler"
CULLER_SCOPES = [
    "list:users",
    "read:users:activity",
    "read:servers",
    "delete:servers",
    "admin:server_state",
]
IDLE_STOP_ROUTE = r"/api/factorylab/idle-stop"


def _child_state(server: dict) -> dict:
    state = server.get("state") or {}
    return state.get("child_state") or state


def idle_seconds(server: dict, inactive: datetime.timedelta, now: float | None = None) -> float:
    """How long the server's kernels have been idle (its hub activity if none reported)."""
    reported = _child_state(server).get(saved.KERNEL_ACTIVITY)
    if not reported:
        return inactive.total_seconds()
    return max(0.0, (now or time.time()) - float(reported))


def should_cull(server: dict, inactive: datetime.timedelta, now: float | None = None) -> bool:
    """Whether ``server`` (a hub API server model with state) is past its idle limit."""
    limit = _child_state(server).get(saved.IDLE_LIMIT)
    if not limit:
        return False
    return idle_seconds(server, inactive, now) >= float(limit)


_USER_URL = re.compile(r"^/(?:[^/]+/)*user/([^/]+)/([^/]*)/?$")


def server_owner(server: dict) -> tuple[str, str]:
    """(user, server name) from a server model's ``url`` (``/user/NAME/[SERVER/]``)."""
    match = _USER_URL.match(server.get("url") or "")
    if not match:
        raise ValueError(f"not a user server URL: {server.get('url')!r}")
    return match.group(1), match.group(2)


def make_arbiter(api_url: str, token: str):
    """The culler's ``cull_arbiter_hook``: per-server limits by kernel activity.

    Before answering "cull", it tells the hub why, so the user reads it later.
    """
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    async def arbiter(inactive, inactive_limit, server):
        if not should_cull(server, inactive):
            return False
        user, name = server_owner(server)
        body = {"idle_seconds": idle_seconds(server, inactive)}
        request = HTTPRequest(
            api_url.rstrip("/") + IDLE_STOP_ROUTE.replace("/api", "", 1) + f"/{user}/{name}",
            method="POST",
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            body=json.dumps(body),
        )
        await AsyncHTTPClient().fetch(request, raise_error=False)
        return True

    return arbiter


def configure_culler(c) -> None:
    """Configure jupyterhub-idle-culler (its ``--config`` file calls this)."""
    c.IdleCuller.cull_arbiter_hook = make_arbiter(
        os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"]
    )


def culler_service(site: Site, python: str) -> dict:
    """The hub-managed service entry that runs the culler."""
    config = os.path.join(os.path.dirname(__file__), "culler_config.py")
    certs = site.hub.internal_certs_dir  # internal SSL: the hub's client certificate
    # the arbiter decides per server; --timeout is the floor it is asked about at all
    return {
        "name": CULLER_SERVICE,
        "command": [
            python,
            "-m",
            "jupyterhub_idle_culler",
            "--timeout=1",
            f"--cull-every={site.idle.check_every}",
            f"--config={config}",
            *(
                ["--ssl-enabled=True", f"--internal-certs-location={certs}"]
                if site.hub.internal_ssl
                else []
            ),
        ],
    }
