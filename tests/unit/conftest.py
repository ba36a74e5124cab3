"""Shared fixtures for unit tests: no daemons, no root."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from spawners.site.loader import load_site
from spawners.site.model import Site

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site() -> Site:
    """The demo site file that `make up` deploys."""
    return load_site(REPO / "hub_config" / "site.local.yaml")


class DiscoveryServer:
    """An OIDC discovery document served over real HTTP on loopback, shaped as a
    Keycloak realm serves it; ``document`` may be changed while it runs."""

    def __init__(self):
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(json.dumps(state.document).encode())

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.issuer = f"http://127.0.0.1:{self.server.server_port}/realms/ai-factory"
        base = self.issuer + "/protocol/openid-connect"
        self.document = {
            "issuer": self.issuer,
            "authorization_endpoint": base + "/auth",
            "token_endpoint": base + "/token",
            "userinfo_endpoint": base + "/userinfo",
        }

    def close(self) -> None:
        """Stop answering: the provider is down."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def discovery():
    server = DiscoveryServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_event_log():
    """No unit test writes to a deployed hub's event log (configure_hub may open it)."""
    from spawners.hub import events

    events.configure("")
    yield
    events.configure("")
