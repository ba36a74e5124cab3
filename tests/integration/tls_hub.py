"""A second, production-shaped hub for the login and TLS tests.

It runs the deployed FactoryLab code and ``jupyterhub_config.py`` as the ``factorylab``
user, next to the demo hub and on the same Slurm, with a site file that differs from
the demo's where a real AI Factory would:

- users log in through a real OpenID Connect provider (npm ``oidc-provider``, started
  here on loopback from ``tests/oidc/``), mapped to the demo Unix accounts;
- the proxy serves https with a self-signed certificate made here;
- ``hub.internal_ssl`` is on: hub, proxy, culler and sessions talk mutual TLS.

Its jobs carry their own job name, so neither hub mistakes the other's jobs for orphans.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from ..support.hub import Hub

REPO = Path(__file__).resolve().parents[2]
OIDC_DIR = REPO / "tests" / "oidc"
ARTIFACTS = REPO / "tests" / "artifacts"
STATE = Path("/var/lib/factorylab-tls-test")
URL = "https://127.0.0.1:8443"
ISSUER = "http://127.0.0.1:9400"
HUB_USER = "factorylab"
JOB_NAME = "factorylab-tls"

# The identity provider's people. Passwords are the IdP's, not Unix's.
IDP_PASSWORD = "idp-test-password"
IDP_USERS = {
    # login: (username claim, groups)
    "ada": ("ada.lovelace@uni.example", ["ai-factory-users"]),  # mapped to demo18
    "grace": ("demo24", ["ai-factory-users", "ai-factory-admins"]),
    "mallory": ("demo25", ["guests"]),  # a Unix account, but not an allowed group
    "ghost": ("ghost", ["ai-factory-users"]),  # allowed, but no Unix account
    "rooty": ("root", ["ai-factory-users"]),  # an account outside factorylab-users
    "odd": ("Bad Name!", ["ai-factory-users"]),  # not a Unix username at all
    "eve": ("Demo26", ["ai-factory-users"]),  # an editable claim, one case away from demo26
    "ada2": ("Ada.Lovelace@uni.example", ["ai-factory-users"]),  # the map's key, other case
}
USERNAME_MAP = {"ada.lovelace@uni.example": "demo18"}


@dataclass
class TlsHub:
    """The running hub, its identity provider and what the tests need to talk to them."""

    url: str
    cert: Path
    admin: Hub
    log: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def session(self) -> requests.Session:
        """A browser-like HTTP session that trusts the hub's certificate."""
        browser = requests.Session()
        browser.verify = str(self.cert)
        browser.trust_env = False  # else REQUESTS_CA_BUNDLE overrides verify
        return browser


def _run_as(user: str, argv: list[str], env: dict, log: Path, cwd: Path) -> subprocess.Popen:
    handle = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    return subprocess.Popen(
        ["runuser", "-u", user, "--", *argv],
        env=env,
        cwd=cwd,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        umask=0o027,
    )


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "public.crt", directory / "public.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    shutil.chown(key, "root", HUB_USER)
    key.chmod(0o640)
    return cert, key


def _site_file(cert: Path, key: Path, secret_file: Path) -> dict:
    site = yaml.safe_load((REPO / "hub_config" / "site.local.yaml").read_text())
    nodes = [f"c{n:02d}" for n in range(1, 9)]  # every node a session may land on
    site["hub"] = {
        "hub_ip": site["hub"]["hub_ip"],  # the login node's address on the cluster network
        "hub_connect_ip": site["hub"]["hub_connect_ip"],
        "internal_ssl_alt_names": [f"DNS:{n}" for n in nodes]
        + [f"IP:10.213.0.{10 + int(n[1:])}" for n in nodes],
        "public_url": URL,
        "hub_port": 8091,
        "proxy_api_port": 8011,
        "state_dir": str(STATE),
        "tls_cert_file": str(cert),
        "tls_key_file": str(key),
        "internal_ssl": True,
        "named_servers": 0,
    }
    site["slurm"]["job_name"] = JOB_NAME
    site["auth"] = {
        "method": "oidc",
        "oidc": {
            "issuer": ISSUER,
            "client_id": "factorylab-hub",
            "client_secret_file": str(secret_file),
            "scopes": ["openid", "profile", "email", "groups"],
            "username_claim": "preferred_username",
            "username_claim_trusted": True,  # the test IdP fixes its claims
            "username_map": USERNAME_MAP,
            "allowed_groups": ["ai-factory-users"],
            "admin_groups": ["ai-factory-admins"],
            "login_service": "Test IdP",
        },
    }
    return site


def _wait(url: str, verify: str | bool, process: subprocess.Popen, log: Path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited: {log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=5, verify=verify).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s: {log.read_text()[-3000:]}")


def start() -> TlsHub:
    """Start the identity provider and the hub; return once both answer."""
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        raise AssertionError("tests/oidc/node_modules is missing: `make test` runs npm ci there")
    stop_leftovers()
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(mode=0o750)
    shutil.chown(STATE, HUB_USER, HUB_USER)
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "tls-hub.log"
    log.write_text("")

    client_secret = secrets.token_hex(24)
    secret_file = STATE / "oidc-client-secret"
    secret_file.write_text(client_secret + "\n")
    shutil.chown(secret_file, "root", HUB_USER)
    secret_file.chmod(0o640)
    provider_config = STATE / "provider.json"
    provider_config.write_text(
        json.dumps(
            {
                "issuer": ISSUER,
                "client": {
                    "client_id": "factorylab-hub",
                    "client_secret": client_secret,
                    "redirect_uris": [f"{URL}/hub/oauth_callback"],
                },
                "users": [
                    {
                        "login": login,
                        "password": IDP_PASSWORD,
                        "claims": {
                            "preferred_username": claim,
                            "name": login.title(),
                            "email": f"{login}@uni.example",
                            "groups": groups,
                        },
                    }
                    for login, (claim, groups) in IDP_USERS.items()
                ],
            }
        )
    )
    provider_config.chmod(0o600)
    provider = subprocess.Popen(
        ["node", str(OIDC_DIR / "provider.mjs"), str(provider_config)],
        stdout=open(ARTIFACTS / "tls-idp.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _wait(f"{ISSUER}/.well-known/openid-configuration", True, provider, ARTIFACTS / "tls-idp.log")

    cert, key = _certificate(STATE)
    site_path = STATE / "site.yaml"
    site_path.write_text(yaml.safe_dump(_site_file(cert, key, secret_file)))
    shutil.chown(site_path, "root", HUB_USER)
    site_path.chmod(0o640)
    admin_token = secrets.token_hex(32)
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "FACTORYLAB_SITE": str(site_path),
        "FACTORYLAB_ADMIN_API_TOKEN": admin_token,
        "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
    }
    hub_process = _run_as(
        HUB_USER,
        ["/opt/factorylab/hub/bin/jupyterhub", "--config=/etc/factorylab/jupyterhub_config.py"],
        env,
        log,
        STATE,
    )
    (STATE / "hub.pid").write_text(str(hub_process.pid))
    _wait(f"{URL}/hub/api/", str(cert), hub_process, log)
    admin = Hub(admin_token, url=URL, verify=str(cert))
    return TlsHub(URL, cert, admin, log, [hub_process, provider])


def stop(hub: TlsHub) -> None:
    """Stop every session of this hub, then the hub, its proxy and the provider."""
    try:
        for user in hub.admin.api("GET", "/users").json():
            if user["servers"]:
                hub.admin.stop(user["name"])
    finally:
        for process in hub.processes:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
        stop_leftovers()


def stop_leftovers() -> None:
    """A hub of an interrupted run, the proxy the hub started (it outlives the hub by
    design), stray jobs and the provider."""
    pid_file = STATE / "hub.pid"
    if pid_file.exists():
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int(pid_file.read_text().strip()), signal.SIGTERM)
            time.sleep(1)
    pid_file = STATE / "proxy.pid"
    if pid_file.exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    subprocess.run(["scancel", "--name", JOB_NAME], capture_output=True)
    subprocess.run(["pkill", "-f", str(OIDC_DIR / "provider.mjs")], capture_output=True)
    # its culler, should the hub have been killed before stopping it
    subprocess.run(["pkill", "-f", f"internal-certs-location={STATE}/"], capture_output=True)
