"""The site file's sections about the hub itself: where it listens, who its users are,
and the demo accounts."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from spawners.site.types import (
    SlurmName,
    Strict,
)


class HubSettings(Strict):
    """Where the hub listens and how jobs reach it."""

    public_url: str = Field(
        "http://127.0.0.1:8000", description="URL users open; the proxy listens here."
    )
    hub_ip: str = Field("127.0.0.1", description="Address the hub's own API binds to.")
    hub_port: int = Field(8081, ge=1, le=65535)
    hub_connect_ip: str = Field(
        "127.0.0.1",
        description="Address that jobs on compute nodes use to reach the hub API.",
    )
    proxy_api_port: int = Field(8001, ge=1, le=65535)
    state_dir: str = Field("/var/lib/factorylab", description="Hub database and cookie secret.")
    events_log: str = Field(
        "/var/log/factorylab/events.log",
        description="The session event log (JSON lines; rotated at 10 MiB into .1 … .5), "
        "an events*.log in root's /var/log/factorylab: make up creates it and its backups "
        "for the hub, which never creates a file itself. Empty: no event log.",
    )
    named_servers: int = Field(
        2, ge=0, le=50, description="Named servers each user may run besides the default; 0: none."
    )
    tls_cert_file: str | None = Field(
        None, description="Certificate the proxy serves on an https public_url (PEM)."
    )
    tls_key_file: str | None = Field(None, description="Its private key (PEM).")
    internal_ssl: bool = Field(
        False,
        description="Mutual TLS between hub, proxy, services and sessions (JupyterHub's "
        "internal_ssl). The hub then starts the proxy itself, with the internal certificates.",
    )
    internal_ssl_alt_names: list[str] = Field(
        default_factory=list,
        description="Names in each session's certificate besides localhost and 127.0.0.1, "
        "e.g. DNS:*.compute.example.org: how the hub and proxy reach compute nodes.",
    )
    proxy_command: list[str] = Field(
        default_factory=lambda: [
            "/usr/bin/node",
            "/opt/factorylab/proxy/node_modules/configurable-http-proxy/bin/"
            "configurable-http-proxy",
        ],
        description="How the hub starts configurable-http-proxy when it starts it itself.",
    )

    @field_validator("events_log")
    @classmethod
    def _events_log_in_factorylab_logs(cls, value: str) -> str:
        if value and not re.fullmatch(r"/var/log/factorylab/events[A-Za-z0-9_-]*\.log", value):
            raise ValueError(
                "must be /var/log/factorylab/events.log (or another events*.log there, "
                "which make up creates for the hub), or empty for no event log"
            )
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> HubSettings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError(
                "hub.tls_cert_file and hub.tls_key_file: set both (a certificate and its key) "
                "or neither"
            )
        if self.tls_cert_file and not self.public_url.startswith("https://"):
            raise ValueError(
                "hub.public_url: a TLS certificate is set, so the URL must start with https://"
            )
        for name in self.internal_ssl_alt_names:
            if not re.fullmatch(r"(DNS|IP):[A-Za-z0-9*.:-]+", name):
                raise ValueError(
                    f"hub.internal_ssl_alt_names: {name!r} is not DNS:<name> or IP:<address>"
                )
        return self

    @property
    def connect_alt_names(self) -> list[str]:
        """Certificate names for where jobs reach the hub, beyond the loopback ones.

        >>> HubSettings(hub_ip="10.0.0.1", hub_connect_ip="login1").connect_alt_names
        ['IP:10.0.0.1', 'DNS:login1']
        """
        names = []
        for host in dict.fromkeys((self.hub_ip, self.hub_connect_ip)):
            if host in ("", "0.0.0.0", "::", "localhost", "127.0.0.1", "::1"):
                continue
            try:
                ipaddress.ip_address(host)
                names.append(f"IP:{host}")
            except ValueError:
                names.append(f"DNS:{host}")
        return names

    @property
    def internal_certs_dir(self) -> str:
        """Where the hub keeps its internal-SSL CA and certificates (hub user only)."""
        return f"{self.state_dir}/internal-ssl"


class UserSettings(Strict):
    """Who may use the hub."""

    group: SlurmName = Field(
        "factorylab-users",
        description="Unix group whose members may log in; the hub may run Slurm verbs as them.",
    )
    admin_group: SlurmName | None = Field(
        None,
        description="Unix group whose members are hub admins (PAM login; with OIDC, "
        "auth.oidc.admin_groups decides). They see /hub/factorylab/admin and may stop "
        "anyone's session. They must be in `group` too to log in.",
    )


DEMO_PUBLIC_CONSENT = "anyone who can reach this hub may log in as a demo user"


class DemoSettings(Strict):
    """Demo accounts for a local evaluation cluster. Never enable on a real site."""

    enabled: bool = False
    prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,15}$")] = "demo"
    count: int = Field(40, ge=0, le=500)
    password: str = Field("", description="Demo-only password shared by all demo users.")
    groups: dict[SlurmName, list[SlurmName]] = Field(
        default_factory=dict,
        description="Extra Unix groups for demo users (to try group_limits and profiles).",
    )
    public: str = Field(
        "",
        description="Demo users on a public_url that is not loopback are refused unless this "
        f"says, word for word: {DEMO_PUBLIC_CONSENT!r}.",
    )

    @model_validator(mode="after")
    def _password_when_enabled(self) -> DemoSettings:
        if self.enabled and len(self.password) < 8:
            raise ValueError("password: demo users need a password of at least 8 characters")
        return self

    def usernames(self) -> list[str]:
        """The demo accounts, ``demo01`` … ``demo40``."""
        width = max(2, len(str(self.count)))
        return [f"{self.prefix}{i:0{width}d}" for i in range(1, self.count + 1)]
