"""OIDC login into Unix accounts, https with Secure cookies, and internal SSL.

Against the second hub of ``tls_hub.py``: a real OpenID Connect provider on loopback,
the deployed FactoryLab code, and real Slurm jobs.
"""

from __future__ import annotations

import re
import socket
import ssl
import stat
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from ..support.hub import process_env, proxied, run_in_kernel, session_pid
from .tls_hub import IDP_PASSWORD, ISSUER, STATE, TlsHub

INTERNAL_CERTS = STATE / "internal-ssl"  # the TLS hub's internal CAs (site: internal_certs_dir)


def oidc_login(
    hub: TlsHub, login: str, password: str = IDP_PASSWORD
) -> tuple[requests.Session, requests.Response, list[requests.Response]]:
    """Log in as a browser would: hub -> provider's form -> provider -> hub callback.

    Returns the session, the last response, and every hub response on the way.
    """
    browser = hub.session()
    form = browser.get(f"{hub.url}/hub/oauth_login", timeout=30)
    assert form.url.startswith(f"{ISSUER}/interaction/"), form.url
    hub_responses = [r for r in form.history if r.url.startswith(hub.url)]
    response = browser.post(form.url, data={"login": login, "password": password}, timeout=60)
    hub_responses += [r for r in (*response.history, response) if r.url.startswith(hub.url)]
    return browser, response, hub_responses


def test_login_maps_the_claim_to_the_unix_account(tls_hub):
    browser, response, _ = oidc_login(tls_hub, "ada")
    assert response.status_code == 200, response.text[:500]
    assert response.url.startswith(f"{tls_hub.url}/hub/spawn"), response.url
    # ada.lovelace@uni.example is demo18 on this cluster (site file: username_map)
    me = browser.get(f"{tls_hub.url}/hub/api/user", timeout=30)
    assert me.json()["name"] == "demo18"
    model = tls_hub.admin.api("GET", "/users/demo18").json()
    assert model["name"] == "demo18" and not model["admin"]
    assert "ai-factory-users" in model["groups"]  # the provider's groups, mirrored
    assert tls_hub.admin.api("GET", "/users/ada.lovelace@uni.example").status_code == 404


def test_admin_group_makes_a_hub_admin(tls_hub):
    _, response, _ = oidc_login(tls_hub, "grace")
    assert response.status_code == 200
    assert tls_hub.admin.api("GET", "/users/demo24").json()["admin"] is True


@pytest.mark.parametrize(
    ("login", "user", "sentence"),
    [
        ("mallory", "demo25", "not a member of a group that may use this service"),
        ("ghost", "ghost", "there is no HPC account named 'ghost' on this system"),
        ("rooty", "root", "the HPC account 'root' is not enabled for notebooks"),
        ("odd", "Bad Name!", "which is not the name of an HPC account here"),
        # an unmapped claim is never case-folded into someone's account (issue 14, 8)
        ("eve", "demo26", "which is not the name of an HPC account here"),
        ("eve", "Demo26", "which is not the name of an HPC account here"),
        ("ada2", "Ada.Lovelace@uni.example", "differs only in upper/lower case"),
    ],
)
def test_refused_logins_get_a_sentence_and_no_server(tls_hub, login, user, sentence):
    browser, response, _ = oidc_login(tls_hub, login)
    assert response.status_code == 403
    assert sentence in response.text.replace("&#39;", "'"), response.text[-1500:]
    assert "Traceback" not in response.text
    assert tls_hub.admin.api("GET", f"/users/{user}").status_code == 404
    assert not [c for c in browser.cookies if c.name == "jupyterhub-hub-login"]


def test_wrong_password_at_the_provider_stays_there(tls_hub):
    browser, response, _ = oidc_login(tls_hub, "ada", "wrong")
    assert response.url.startswith(f"{ISSUER}/interaction/")
    assert "Wrong username or password" in response.text
    assert not [c for c in browser.cookies if c.name == "jupyterhub-hub-login"]


def _flags(responses: list[requests.Response]) -> dict[str, str]:
    """Cookie name -> its Set-Cookie attributes, from raw headers."""
    found = {}
    for response in responses:
        for header in response.raw.headers.getlist("Set-Cookie"):
            name, _, rest = header.partition("=")
            if not rest.startswith('""'):  # not a deletion
                found[name.strip()] = rest.lower()
    return found


def test_cookies_are_secure_and_httponly_under_tls(tls_hub):
    _, _, hub_responses = oidc_login(tls_hub, "ada")
    flags = _flags(hub_responses)
    for name in ("jupyterhub-hub-login", "jupyterhub-session-id"):
        assert name in flags, flags
        assert "; secure" in flags[name] and "; httponly" in flags[name], (name, flags[name])
    assert "; secure" in flags["oauthenticator-state"]


def test_internal_ssl_session_end_to_end(tls_hub):
    """A session on a mutual-TLS hub: certificates in place, plain or anonymous TLS refused,
    the proxy, kernels and the session's reports to the hub all work."""
    user, admin = "demo18", tls_hub.admin
    admin.stop(user)
    try:
        server = admin.start(user, {"profile": "cpu-notebook"})
        assert server["ready"]
        env = process_env(session_pid(user))
        for key in ("KEYFILE", "CERTFILE", "CLIENT_CA"):
            path = Path(env[f"JUPYTERHUB_SSL_{key}"])
            assert path.owner() == user and stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert "FACTORYLAB_TLS_FILES" not in env  # the launcher took the PEMs out
        assert env["JUPYTERHUB_API_URL"].startswith("https://")
        address = _listening_at(env["JUPYTERHUB_SERVICE_URL"])
        # the session's server listens (a refused connection fails here), speaks only TLS,
        # and answers a client with a certificate signed by the hub, and no other
        assert not _plain_http_answer(address).startswith(b"HTTP/")
        with_cert = _client_context()
        with_cert.load_cert_chain(
            INTERNAL_CERTS / "hub-internal" / "hub-internal.crt",
            INTERNAL_CERTS / "hub-internal" / "hub-internal.key",
        )
        answer = _https_answer(address, with_cert)
        assert isinstance(answer, bytes) and answer.startswith(b"HTTP/1.1 "), answer
        refusal = _https_answer(address, _client_context())
        assert not isinstance(refusal, bytes) or not refusal.startswith(b"HTTP/"), refusal
        # the server refused us, not we it: the client trusts the server's CA
        assert not isinstance(refusal, ssl.SSLCertVerificationError), refusal
        # through the public https proxy, all works
        token = admin.user_token(user)
        assert proxied(admin, user, "api/contents", token).status_code == 200
        before = _activity(admin, user)
        kernel = proxied(admin, user, "api/kernels", token, method="POST", json={})
        assert kernel.status_code == 201, kernel.text
        kernel_id = kernel.json()["id"]
        assert run_in_kernel(admin, user, token, "print(6 * 7)", kernel_id=kernel_id) == "42\n"
        # the session's kernel-activity reporter reached the hub API over mutual TLS
        deadline = time.monotonic() + 40
        while _activity(admin, user) <= before and time.monotonic() < deadline:
            time.sleep(1)
        assert _activity(admin, user) > before
    finally:
        admin.stop(user)


def _listening_at(service_url: str) -> tuple[str, int]:
    """The host and port the session's server listens on, from its JUPYTERHUB_SERVICE_URL."""
    url = urlsplit(service_url)
    assert url.hostname not in (None, "", "0.0.0.0", "::"), service_url  # the node's address
    return url.hostname, url.port


def _plain_http_answer(server: tuple[str, int]) -> bytes:
    """What the server sends back to plain HTTP: never an HTTP answer from a TLS server.

    Connecting must work: a port nobody listens on fails the test, not passes it.
    """
    with socket.create_connection(server, timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            return raw.recv(100)
        except (ConnectionResetError, TimeoutError):  # it hung up, or said nothing
            return b""


def _client_context() -> ssl.SSLContext:
    """A TLS client that trusts the sessions' CA (as the proxy does), with no certificate."""
    return ssl.create_default_context(cafile=INTERNAL_CERTS / "proxy-client-ca_trust.crt")


def _https_answer(server: tuple[str, int], context: ssl.SSLContext) -> bytes | OSError:
    """The first bytes of the server's answer over TLS, or how it ended the connection.

    Connecting must work (a refused connection raises): only the TLS layer may refuse.
    """
    with socket.create_connection(server, timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=server[0]) as tls:
                tls.sendall(b"GET /user/demo18/api/status HTTP/1.0\r\n\r\n")
                return tls.recv(100)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
            return exc


def _activity(admin, user: str) -> float:
    sessions = admin.api("GET", "/factorylab/sessions").json()["sessions"]
    return max((s["kernel_activity"] or 0) for s in sessions if s["user"] == user)


def test_the_idle_culler_talks_to_the_hub_over_mutual_tls(tls_hub):
    deadline = time.monotonic() + 30
    pattern = re.compile(r" 200 GET /hub/api/users\S* \(factorylab-idle-culler@")
    while not pattern.search(tls_hub.log.read_text()) and time.monotonic() < deadline:
        time.sleep(1)
    assert pattern.search(tls_hub.log.read_text()), tls_hub.log.read_text()[-3000:]
