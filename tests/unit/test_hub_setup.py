"""configure_hub: login method, TLS and internal SSL from the site file."""

import pytest
import yaml
from traitlets.config import Config

from spawners.hub_setup import configure_hub
from spawners.idle_policy import CULLER_SERVICE
from spawners.oidc_login import FactoryLabOAuthenticator

from .conftest import REPO


@pytest.fixture(autouse=True)
def _keep_jupyterhub_handlers():
    """configure_hub removes batchspawner's API handler; other tests expect it registered."""
    from jupyterhub import apihandlers

    saved = list(apihandlers.default_handlers)
    yield
    apihandlers.default_handlers[:] = saved


def _site_file(tmp_path, **changes) -> str:
    data = yaml.safe_load((REPO / "hub_config" / "site.local.yaml").read_text())
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values}
    data["hub"] = {**data["hub"], "state_dir": str(tmp_path)}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_demo_site_uses_pam_and_an_external_proxy(tmp_path):
    config = Config()
    configure_hub(config, _site_file(tmp_path))
    assert config.JupyterHub.authenticator_class == "pam"
    assert config.Authenticator.allowed_groups == {"factorylab-users"}
    assert config.ConfigurableHTTPProxy.should_start is False
    assert config.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    assert "internal_ssl" not in config.JupyterHub


def _oidc_site(tmp_path, issuer, secret_mode=0o640):
    secret = tmp_path / "client-secret"
    secret.write_text("s3cret\n")
    secret.chmod(secret_mode)
    oidc = {
        "issuer": issuer,
        "client_id": "factorylab",
        "client_secret_file": str(secret),
        "username_map": {"ada@uni.example": "ada"},
        "allowed_groups": ["ai-factory-users"],
        "username_claim_trusted": True,
        "admin_groups": ["ai-factory-admins"],
    }
    return _site_file(tmp_path, auth={"method": "oidc", "oidc": oidc})


def test_oidc_login_is_configured_from_the_site_file(tmp_path, discovery):
    issuer = discovery.issuer
    config = Config()
    configure_hub(config, _oidc_site(tmp_path, issuer))
    assert config.JupyterHub.authenticator_class is FactoryLabOAuthenticator
    auth = config.FactoryLabOAuthenticator
    assert auth.client_secret == "s3cret"
    assert auth.token_url == issuer + "/protocol/openid-connect/token"
    assert auth.oauth_callback_url == "http://127.0.0.1:8000/hub/oauth_callback"
    assert auth.username_map == {"ada@uni.example": "ada"}
    assert auth.unix_group == "factorylab-users"
    assert auth.allowed_groups == {"ai-factory-users"} and auth.allow_all is False
    assert auth.auth_state_groups_key == "oauth_user.groups"
    # the authenticator accepts every value it is given (no misspelt trait)
    FactoryLabOAuthenticator(config=config)


def test_a_provider_outage_at_restart_uses_the_last_discovery(tmp_path, discovery, capsys):
    site = _oidc_site(tmp_path, discovery.issuer)
    configure_hub(Config(), site)
    discovery.close()
    config = Config()
    configure_hub(config, site)
    assert config.FactoryLabOAuthenticator.token_url.endswith("/token")
    assert "using the endpoints found at the last start" in capsys.readouterr().err
    (tmp_path / "oidc-endpoints.json").unlink()
    with pytest.raises(SystemExit) as stop:
        configure_hub(Config(), site)
    assert stop.value.code == 2
    assert "auth.oidc.issuer: cannot read" in capsys.readouterr().err


def test_a_world_readable_secret_stops_the_hub_with_the_fix(tmp_path, discovery, capsys):
    with pytest.raises(SystemExit):
        configure_hub(Config(), _oidc_site(tmp_path, discovery.issuer, secret_mode=0o644))
    assert "chmod 0640" in capsys.readouterr().err


def test_internal_ssl_has_the_hub_run_the_proxy_with_tls(tmp_path):
    hub = {
        "public_url": "https://127.0.0.1:8443",
        "tls_cert_file": "/etc/ssl/hub.crt",
        "tls_key_file": "/etc/ssl/hub.key",
        "internal_ssl": True,
        "internal_ssl_alt_names": ["DNS:*.compute.example.org"],
    }
    config = Config()
    configure_hub(config, _site_file(tmp_path, hub=hub))
    assert config.JupyterHub.internal_ssl is True
    assert config.JupyterHub.internal_certs_location == f"{tmp_path}/internal-ssl"
    assert config.Spawner.ssl_alt_names == ["DNS:*.compute.example.org"]
    assert config.JupyterHub.ssl_cert == "/etc/ssl/hub.crt"
    assert config.ConfigurableHTTPProxy.should_start is True
    assert config.ConfigurableHTTPProxy.api_url == "https://127.0.0.1:8001"
    assert config.JupyterHub.cookie_options == {"secure": True}
    culler = next(s for s in config.JupyterHub.services if s["name"] == CULLER_SERVICE)
    assert "--ssl-enabled=True" in culler["command"]
