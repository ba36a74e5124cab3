"""configure_hub: login method, TLS and internal SSL from the site file."""

import copy
import re

import pytest
import yaml
from jupyterhub.app import JupyterHub
from jupyterhub.crypto import CryptKeeper
from traitlets.config import Config

from spawners.hub.config import configure_hub
from spawners.hub.culler import CULLER_SERVICE
from spawners.hub.login import FactoryLabOAuthenticator

from ..conftest import REPO


@pytest.fixture(autouse=True)
def _keep_jupyterhub_handlers():
    """configure_hub removes batchspawner's API handler; other tests expect it registered."""
    from jupyterhub import apihandlers

    saved = list(apihandlers.default_handlers)
    yield
    apihandlers.default_handlers[:] = saved


def _classes_the_hub_uses(config: Config) -> list[type]:
    """The configurable classes a hub started with ``config`` would instantiate.

    The app itself, and what its ``*_class`` settings name (entry points such as ``pam``
    or ``factorylab-profiles`` resolved as JupyterHub resolves them), and the profile
    spawner's child class.
    """
    hub_traits = JupyterHub.class_traits()
    classes = [JupyterHub, CryptKeeper]
    for name in ("authenticator_class", "spawner_class", "proxy_class"):
        trait = hub_traits[name]
        classes.append(trait.validate(None, config.JupyterHub.get(name, trait.default_value)))
    for cls in list(classes):
        child = cls.class_traits().get("child_class")
        if child is not None:
            configured = config[cls.__name__].get("child_class", child.default_value)
            classes.append(child.validate(None, configured))
    return classes


def assert_every_setting_exists(config: Config) -> None:
    """Each ``c.Section.key`` names a class the hub uses and one of its config traits.

    traitlets ignores a section no class claims, and only logs a key its class lacks, so a
    misspelt setting would otherwise pass every other test and do nothing in the hub.
    """
    classes = _classes_the_hub_uses(config)
    for section, values in config.items():
        if not values:  # reading c.X in a test creates an empty section
            continue
        users = [cls for cls in classes if section in {k.__name__ for k in cls.mro()}]
        assert users, f"c.{section}: no class the hub uses is or inherits {section}"
        for key in values:
            for cls in users:
                assert key in cls.class_trait_names(config=True), (
                    f"c.{section}.{key}: {cls.__name__} has no such setting"
                )


def test_a_misspelt_setting_is_caught(tmp_path):
    config = Config()
    configure_hub(config, _site_file(tmp_path))
    assert_every_setting_exists(config)
    for typo, message in (
        ("JupyterHub.internal_sll", "c.JupyterHub.internal_sll: JupyterHub has no such setting"),
        ("PAMAuthenticatr.open_sessions", "c.PAMAuthenticatr: no class the hub uses"),
        ("Spawner.htp_timeout", "c.Spawner.htp_timeout: "),
        ("SlurmSpawner.site_fle", "c.SlurmSpawner.site_fle: SlurmSpawner has no such setting"),
    ):
        misspelt = copy.deepcopy(config)
        section, key = typo.split(".")
        misspelt[section][key] = True
        with pytest.raises(AssertionError, match=re.escape(message)):
            assert_every_setting_exists(misspelt)


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
    assert_every_setting_exists(config)
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
    assert_every_setting_exists(config)
    assert config.JupyterHub.authenticator_class is FactoryLabOAuthenticator
    auth = config.FactoryLabOAuthenticator
    assert auth.client_secret == "s3cret"
    assert auth.token_url == issuer + "/protocol/openid-connect/token"
    assert auth.oauth_callback_url == "http://127.0.0.1:8000/hub/oauth_callback"
    assert auth.username_map == {"ada@uni.example": "ada"}
    assert auth.unix_group == "factorylab-users"
    assert auth.allowed_groups == {"ai-factory-users"} and auth.allow_all is False
    assert auth.auth_state_groups_key == "oauth_user.groups"
    # the authenticator accepts every value it is given
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
    assert_every_setting_exists(config)
    assert config.JupyterHub.internal_ssl is True
    assert config.JupyterHub.internal_certs_location == f"{tmp_path}/internal-ssl"
    assert config.Spawner.ssl_alt_names == ["DNS:*.compute.example.org"]
    assert config.JupyterHub.ssl_cert == "/etc/ssl/hub.crt"
    assert config.ConfigurableHTTPProxy.should_start is True
    assert config.ConfigurableHTTPProxy.api_url == "https://127.0.0.1:8001"
    assert config.JupyterHub.tornado_settings == {"cookie_options": {"secure": True}}
    culler = next(s for s in config.JupyterHub.services if s["name"] == CULLER_SERVICE)
    assert "--ssl-enabled=True" in culler["command"]
