"""Turn a validated site file into JupyterHub configuration.

``hub_config/jupyterhub_config.py`` calls :func:`configure_hub`; all the hub's
FactoryLab knobs are set here, so a reader finds them in one place.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import batchspawner  # noqa: F401  (registers /api/batchspawner; configure_hub removes it)
from tornado import web

from spawners.hub import (
    admin_page,
    course_api,
    course_pages,
    events,
    form,
    kernel_api,
    metrics,
    port_api,
    session_api,
)
from spawners.hub.census import CUSTOM_PROFILE, hub_users, session_rows
from spawners.hub.course_runner import RUNNER_SCOPES, course_runner_service
from spawners.hub.culler import CULLER_SCOPES, culler_service
from spawners.hub.login import DiscoveryError, FactoryLabOAuthenticator, discover_endpoints
from spawners.session.site_checks import SITE_CHECKS
from spawners.site.auth import OIDCSettings, SecretFileError, read_client_secret
from spawners.site.loader import SiteFileError, load_site
from spawners.site.model import Site
from spawners.slurm.client import SlurmClient
from spawners.slurm.services import shared_monitor

ADMIN_SERVICE = "factorylab-admin"
ADMIN_SCOPES = ["admin:users", "admin:servers", "tokens", "read:metrics"]
METRICS_SERVICE = "factorylab-metrics"


def configure_hub(c, site_path: str) -> Site:
    """Load ``site_path`` and set ``c`` (the hub's config object) from it.

    An invalid site file prints every problem and stops the hub with exit status 2.
    """
    try:
        site = load_site(site_path, SITE_CHECKS)
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

    # The proxy runs as its own service so that restarting the hub never cuts users off
    # (except with internal SSL: see configure_tls).
    c.ConfigurableHTTPProxy.should_start = False

    configure_login(c, site)
    configure_tls(c, site)

    # Profiles (site file) through wrapspawner; each profile's child is our SlurmSpawner.
    c.JupyterHub.spawner_class = "factorylab-profiles"
    c.JupyterHub.allow_named_servers = site.hub.named_servers > 0
    c.JupyterHub.named_server_limit_per_user = site.hub.named_servers
    # The spawn page and the page that says why a session ended (hub/templates/pages/).
    c.JupyterHub.template_paths = [str(Path(__file__).parent / "templates" / "pages")]
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
        *kernel_api.handlers(),
        *admin_page.handlers(site),
        *course_api.handlers(os.path.abspath(site_path)),
        *course_pages.handlers(os.path.abspath(site_path)),
        (form.STATIC_ROUTE, web.StaticFileHandler, {"path": str(form.STATIC_DIR)}),
    ]

    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    admin_token = os.environ.get("FACTORYLAB_ADMIN_API_TOKEN", "")
    if admin_token:
        add_service(
            c,
            {"name": ADMIN_SERVICE, "api_token": admin_token},
            "Automation: manage users, their servers and tokens.",
            ADMIN_SCOPES,
        )
    if site.idle.enabled:
        # Idle sessions give their resources back: jupyterhub-idle-culler, deciding per
        # server by the kernel activity the session reports (spawners/hub/culler.py).
        add_service(
            c,
            culler_service(site, sys.executable),
            "Stop sessions whose kernels were idle past their limit.",
            CULLER_SCOPES,
        )
    configure_courses(c, site, os.path.abspath(site_path))
    configure_observability(c, site)
    if public.scheme == "https":
        c.JupyterHub.tornado_settings = {"cookie_options": {"secure": True}}
    return site


def add_service(c, service: dict, description: str, scopes: list[str]) -> None:
    """A hub service and the role that gives it ``scopes`` (and nothing else)."""
    c.JupyterHub.services.append(service)
    c.JupyterHub.load_roles.append(
        {
            "name": service["name"],
            "description": description,
            "scopes": scopes,
            "services": [service["name"]],
        }
    )


def configure_courses(c, site: Site, site_file: str) -> None:
    """Courses: members land in their open course, and the runner pre-starts and stops
    course sessions (a service, so a hub restart restarts it)."""
    c.JupyterHub.default_url = course_pages.course_landing(site_file)
    if not site.hub.named_servers:
        return  # courses run as named servers; the site check says so for declared ones
    add_service(
        c,
        course_runner_service(site, sys.executable),
        "Pre-start course sessions, and stop them at the course's end.",
        RUNNER_SCOPES,
    )


def configure_observability(c, site: Site) -> None:
    """FactoryLab's metrics on ``/hub/metrics``, their scrape token, and the event log."""
    c.JupyterHub.authenticate_prometheus = True  # read:metrics, never anonymous
    problem = events.configure(site.hub.events_log)
    if problem:
        print(f"FactoryLab: sessions run without an event log: {problem}", file=sys.stderr)
    if metrics.count_slurm_command not in SlurmClient.observers:
        SlurmClient.observers.append(metrics.count_slurm_command)

    def monitor():  # the spawners' monitor (one per bin_dir and job name: fixed at start)
        return shared_monitor(site)

    def sessions():
        return session_rows(hub_users(), monitor().snapshot)

    metrics.register(metrics.SnapshotCollector(sessions, monitor))
    metrics.start_series(
        [(profile.partition, key) for key, profile in site.profiles.items()]
        + [(partition, CUSTOM_PROFILE) for partition in site.partitions]
    )
    token = os.environ.get("FACTORYLAB_METRICS_API_TOKEN", "")
    if token:  # a site's Prometheus scrapes with it: it may read metrics, and nothing else
        add_service(
            c,
            {"name": METRICS_SERVICE, "api_token": token},
            "Prometheus: read the hub's metrics.",
            ["read:metrics"],
        )


def configure_login(c, site: Site) -> None:
    """PAM against Unix passwords, or the site's OIDC provider (site file ``auth:``)."""
    if site.auth.method == "pam":
        c.JupyterHub.authenticator_class = "pam"
        c.PAMAuthenticator.open_sessions = False
        c.Authenticator.allowed_groups = {site.users.group}
        if site.users.admin_group:
            c.PAMAuthenticator.admin_groups = {site.users.admin_group}
        return
    oidc = site.auth.oidc
    try:
        secret = read_client_secret(oidc.client_secret_file)
        endpoints = oidc_endpoints(oidc, Path(site.hub.state_dir) / "oidc-endpoints.json")
    except (SecretFileError, DiscoveryError) as exc:
        print(f"FactoryLab: the hub cannot start.\n  - {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    c.JupyterHub.authenticator_class = FactoryLabOAuthenticator
    auth = c.FactoryLabOAuthenticator
    auth.client_id = oidc.client_id
    auth.client_secret = secret
    auth.oauth_callback_url = site.hub.public_url.rstrip("/") + "/hub/oauth_callback"
    auth.authorize_url = endpoints["authorize_url"]
    auth.token_url = endpoints["token_url"]
    auth.userdata_url = endpoints["userdata_url"]
    auth.scope = list(oidc.scopes)
    auth.username_claim = oidc.username_claim
    auth.username_map = dict(oidc.username_map)
    auth.unix_group = site.users.group
    auth.login_service = oidc.login_service
    auth.validate_server_cert = oidc.validate_server_cert
    # IdP groups decide who may log in and who is admin; the Unix account decides the rest.
    auth.manage_groups = True
    auth.auth_state_groups_key = f"oauth_user.{oidc.groups_claim}"
    auth.allowed_groups = set(oidc.allowed_groups)
    auth.admin_groups = set(oidc.admin_groups)
    auth.allow_all = oidc.allow_all


def oidc_endpoints(oidc: OIDCSettings, cache: Path) -> dict[str, str]:
    """The provider's endpoints, discovered; the last good discovery if it is down.

    A hub restart during an identity-provider outage still works: logins wait for the
    provider, but running sessions are never cut off by it.
    """
    try:
        endpoints = discover_endpoints(oidc)
    except DiscoveryError as exc:
        try:
            saved = json.loads(cache.read_text())
        except (OSError, ValueError):
            raise exc from None
        if saved.get("issuer") != oidc.issuer:
            raise exc from None
        print(f"FactoryLab: {exc}; using the endpoints found at the last start", file=sys.stderr)
        return saved["endpoints"]
    with contextlib.suppress(OSError):
        cache.write_text(json.dumps({"issuer": oidc.issuer, "endpoints": endpoints}))
    return endpoints


def configure_tls(c, site: Site) -> None:
    """Public TLS at the proxy, and internal TLS between hub, proxy and sessions."""
    hub = site.hub
    if hub.tls_cert_file:
        # Used when the hub starts the proxy; Ansible passes them to a proxy it runs.
        c.JupyterHub.ssl_cert = hub.tls_cert_file
        c.JupyterHub.ssl_key = hub.tls_key_file
    if hub.internal_ssl:
        c.JupyterHub.internal_ssl = True
        c.JupyterHub.internal_certs_location = hub.internal_certs_dir
        # the hub's own certificate names the address sessions on other nodes use
        c.JupyterHub.trusted_alt_names = [*hub.internal_ssl_alt_names, *hub.connect_alt_names]
        c.Spawner.ssl_alt_names = list(hub.internal_ssl_alt_names)
    scheme = "https" if hub.internal_ssl else "http"
    c.ConfigurableHTTPProxy.api_url = f"{scheme}://127.0.0.1:{hub.proxy_api_port}"
    if hub.internal_ssl:  # the proxy needs the hub's certificates, so the hub runs it
        c.ConfigurableHTTPProxy.should_start = True
        c.ConfigurableHTTPProxy.command = list(hub.proxy_command)
        c.ConfigurableHTTPProxy.pid_file = f"{hub.state_dir}/proxy.pid"
