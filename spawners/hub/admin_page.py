"""``/hub/factorylab/admin``: who holds what, who waits and why, and what failed.

An HTML page for admins (JupyterHub's ``admin-ui`` scope), read from the shared queue
snapshot and the hub's spawners: it costs the scheduler nothing. Each session's Stop
button calls the hub's own REST API from the admin's browser.
"""

from __future__ import annotations

from urllib.parse import quote

from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from spawners.hub import events
from spawners.hub.census import SessionRow, session_rows
from spawners.site.model import Site
from spawners.slurm.services import shared_monitor

ROUTE = r"/factorylab/admin"
TEMPLATE = "factorylab_admin.html"


def duration(seconds: float | None) -> str:
    """``1 h 05 min``, ``4 min``, ``35 s``, or ``-`` when unknown.

    >>> duration(3900), duration(240), duration(35), duration(None)
    ('1 h 05 min', '4 min', '35 s', '-')
    """
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def stop_path(row: SessionRow) -> str:
    """The hub API path (after ``/hub/api/``) that stops this row's server."""
    user = quote(row.user, safe="")
    if row.server:
        return f"users/{user}/servers/{quote(row.server, safe='')}"
    return f"users/{user}/server"


def page_rows(rows: list[SessionRow]) -> tuple[list[SessionRow], list[SessionRow]]:
    """(sessions holding a job on a node, sessions waiting), each sorted for reading."""
    holding = sorted((r for r in rows if r.state != "pending"), key=lambda r: (r.node, r.user))
    waiting = sorted(
        (r for r in rows if r.state == "pending"),
        key=lambda r: (r.partition, r.queue_position or 0, r.submitted_at),
    )
    return holding, waiting


class AdminViewHandler(BaseHandler):
    """The FactoryLab admin view, from the spawners' own job monitor for ``site``."""

    def initialize(self, site: Site) -> None:
        """Keep the site whose shared job monitor the page reads."""
        self.factorylab_site = site

    @web.authenticated
    @needs_scope("admin-ui")  # stacked: both scopes are needed
    @needs_scope("admin:servers")
    async def get(self) -> None:
        monitor = shared_monitor(self.factorylab_site)
        snapshot = monitor.snapshot
        holding, waiting = page_rows(list(session_rows(self.users.values(), snapshot)))
        html = await self.render_template(
            TEMPLATE,
            holding=holding,
            waiting=waiting,
            failures=list(reversed(events.recent_failures)),
            duration=duration,
            stop_path=stop_path,
            snapshot_wall=snapshot.taken_wall,
            scheduler_ok=monitor.healthy,
        )
        self.finish(html)


def handlers(site: Site) -> list[tuple[str, type, dict]]:
    """Routes to add with ``c.JupyterHub.extra_handlers``."""
    return [(ROUTE, AdminViewHandler, {"site": site})]
