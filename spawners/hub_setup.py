"""Turn a validated site file into JupyterHub configuration.

``hub_config/jupyterhub_config.py`` calls :func:`configure_hub`; all the hub's
FactoryLab knobs are set here, so a reader finds them in one place.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import batchspawner  # noqa: F401  (registers /api/batchspawner; configure_hub removes it)
from tornado import web

from . import port_api, session_api, spawn_form
from .idle_policy import CULLER_SCOPES, CULLER_SERVICE, culler_service
from .site import Site, SiteFileError, load_site

ADMIN_SERVICE = "factorylab-admin"
ADMIN_SCOPES = ["admin:users", "admin:servers", "tokens"]


def configure_hub(c, site_path: str) -> Site:
    """Load ``site_path`` and set ``c`` (the hub's config object) from it.

    An invalid site file prints every problem and stops the hub with exit status 2.
    """
    try:
        site = load_site(site_path)
    except SiteFileError as exc:
        print(f"FactoryLab: the hub cannot start.\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None

    public = urlsplit(site.hub.public_url)
    c.JupyterHub.bind_url = site.hub.public_url
    c.JupyterHub.hub_ip = site.hub.hub_ip
    c.JupyterHub.hub_port = site.hub.hub_port
    c.JupyterHub.hub_connect_ip = site.hub.hub_connect_ip
    c.JupyterHub.db_url = f"sqlite:///{site.hub.state_dir}/jupyterhub.sqlite"
    c.JupyterHub.cookie_secret_file = f"{site.hub.state_dir}/jupyterhub_cookie_secret"
    c.JupyterHub.pid_file = ""
    # Sessions are Slurm jobs: they outlive hub restarts and are re-adopted by poll().
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.cleanup_proxy = False

    # The proxy runs as its own service so that restarting the hub never cuts users off.
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{site.hub.proxy_api_port}"

    c.JupyterHub.authenticator_class = "pam"
    c.PAMAuthenticator.open_sessions = False
    c.Authenticator.allowed_groups = {site.users.group}

    # Profiles (site file) through wrapspawner; each profile's child is our SlurmSpawner.
    c.JupyterHub.spawner_class = "factorylab-profiles"
    c.JupyterHub.allow_named_servers = site.hub.named_servers > 0
    c.JupyterHub.named_server_limit_per_user = site.hub.named_servers
    # The spawn page and the page that says why a session ended (templates/hub/).
    c.JupyterHub.template_paths = [str(Path(__file__).parent / "templates" / "hub")]
    c.SlurmSpawner.site_file = os.path.abspath(site_path)
    c.ProfilesSpawner.site_file = os.path.abspath(site_path)
    c.Spawner.default_url = "/lab"
    c.Spawner.http_timeout = 120

    # Jobs report their port to our endpoint; batchspawner's own (which sets any
    # attribute a job posts, registered when batchspawner is imported) is not routed.
    port_api.remove_batchspawner_handler()
    c.JupyterHub.extra_handlers = [
        *port_api.handlers(),
        *session_api.handlers(),
        (spawn_form.STATIC_ROUTE, web.StaticFileHandler, {"path": str(spawn_form.STATIC_DIR)}),
    ]

    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    admin_token = os.environ.get("FACTORYLAB_ADMIN_API_TOKEN", "")
    if admin_token:
        c.JupyterHub.services.append({"name": ADMIN_SERVICE, "api_token": admin_token})
        c.JupyterHub.load_roles.append(
            {
                "name": ADMIN_SERVICE,
                "description": "Automation: manage users, their servers and tokens.",
                "scopes": ADMIN_SCOPES,
                "services": [ADMIN_SERVICE],
            }
        )
    if site.idle.enabled:
        # Idle sessions give their resources back: jupyterhub-idle-culler, deciding per
        # server by the kernel activity the session reports (spawners/idle_policy.py).
        c.JupyterHub.services.append(culler_service(site, sys.executable))
        c.JupyterHub.load_roles.append(
            {
                "name": CULLER_SERVICE,
                "description": "Stop sessions whose kernels were idle past their limit.",
                "scopes": CULLER_SCOPES,
                "services": [CULLER_SERVICE],
            }
        )
    if public.scheme == "https":
        c.JupyterHub.cookie_options = {"secure": True}
    return site
