"""Idle rules: a session's idle limit, per profile or partition, and what its user reads.

Idle culling by kernel activity has three parts:

- the session's own server culls kernels that executed nothing for the limit, even with
  a browser tab connected, and never a busy one (``MappingKernelManager`` settings from
  :func:`server_args`);
- the session reports its latest *kernel* activity to the hub (``factorylab_session``
  in the base image, ``POST /hub/api/factorylab/activity``), which keeps it in the
  spawner's state;
- jupyterhub-idle-culler runs as a hub service with the arbiter of
  :mod:`spawners.hub.culler`: it stops a
  server once the kernel activity in its state is older than the server's own limit.
  Browser traffic, which the hub's own ``last_activity`` counts, does not keep a GPU.
"""

from __future__ import annotations

from spawners.session.request import SessionRequest
from spawners.site.model import Site


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
