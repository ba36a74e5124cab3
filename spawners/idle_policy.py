"""Idle culling by kernel activity, with a limit per profile or partition.

Three parts work together:

- the session's own server culls kernels that executed nothing for the limit, even with
  a browser tab connected, and never a busy one (``MappingKernelManager`` settings from
  :func:`server_args`);
- the session reports its latest *kernel* activity to the hub (``factorylab_session``
  in the base image, ``POST /hub/api/factorylab/activity``), which keeps it in the
  spawner's state;
- jupyterhub-idle-culler runs as a hub service with :func:`cull_arbiter`: it stops a
  server once the kernel activity in its state is older than the server's own limit.
  Browser traffic, which the hub's own ``last_activity`` counts, does not keep a GPU.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time

from .session_request import SessionRequest
from .site import Site

CULLER_SERVICE = "factorylab-idle-culler"
CULLER_SCOPES = [
    "list:users",
    "read:users:activity",
    "read:servers",
    "delete:servers",
    "admin:server_state",
]
IDLE_STOP_ROUTE = r"/api/factorylab/idle-stop"


def idle_limit(site: Site, request: SessionRequest) -> int | None:
    """Seconds without kernel activity after which this session is stopped; None: never."""
    if not site.idle.enabled:
        return None
    if request.profile and request.profile in site.idle.by_profile:
        return site.idle.by_profile[request.profile]
    if request.partition in site.idle.by_partition:
        return site.idle.by_partition[request.partition]
    return site.idle.default


def server_args(limit: int | None) -> list[str]:
    """The single-user server's own kernel culling for an idle limit of ``limit`` s."""
    if limit is None:
        return []
    return [
        f"--MappingKernelManager.cull_idle_timeout={limit}",
        f"--MappingKernelManager.cull_interval={max(5, min(60, limit // 4))}",
        "--MappingKernelManager.cull_connected=True",
        "--MappingKernelManager.cull_busy=False",
    ]


def idle_message(idle_seconds: float, gpus: int) -> str:
    """What the user reads when they come back to a culled session."""
    minutes = max(1, round(idle_seconds / 60))
    freed = f"its GPU{'s' if gpus != 1 else ''}" if gpus else "its CPUs"
    return (
        f"Your session was stopped after {minutes} minute{'s' if minutes != 1 else ''} "
        f"without kernel activity, to free {freed} for others. Your files are kept; "
        "start a new session to continue."
    )


def _child_state(server: dict) -> dict:
    state = server.get("state") or {}
    return state.get("child_state") or state


def idle_seconds(server: dict, inactive: datetime.timedelta, now: float | None = None) -> float:
    """How long the server's kernels have been idle (its hub activity if none reported)."""
    reported = _child_state(server).get("kernel_activity")
    if not reported:
        return inactive.total_seconds()
    return max(0.0, (now or time.time()) - float(reported))


def should_cull(server: dict, inactive: datetime.timedelta, now: float | None = None) -> bool:
    """Whether ``server`` (a hub API server model with state) is past its idle limit."""
    limit = _child_state(server).get("idle_limit")
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
