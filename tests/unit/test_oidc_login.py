"""Username mapping, Unix-account checks and endpoint discovery of the OIDC login."""

import asyncio
import grp
import os
import pwd

import pytest

from spawners.oidc_login import (
    DiscoveryError,
    FactoryLabOAuthenticator,
    LoginRefused,
    discover_endpoints,
    unix_account_problem,
)
from spawners.site_auth import OIDCSettings

# The account running the tests is a real Unix account in its own primary group.
ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def _authenticator(**config) -> FactoryLabOAuthenticator:
    return FactoryLabOAuthenticator(
        client_id="hub",
        client_secret="secret",
        username_claim="preferred_username",
        unix_group=MY_GROUP,
        **config,
    )


def test_the_claim_goes_through_the_mapping():
    auth = _authenticator(username_map={"ada.lovelace@uni.example": "demo18"})
    assert auth.user_info_to_username({"preferred_username": "ada.lovelace@uni.example"}) == (
        "demo18"
    )
    assert auth.user_info_to_username({"preferred_username": "Demo07"}) == "demo07"


@pytest.mark.parametrize(
    ("info", "sentence"),
    [
        ({"email": "x@y"}, "did not tell us your username (claim 'preferred_username')"),
        ({"preferred_username": "ada@uni.example"}, "not the name of an HPC account here"),
        ({"preferred_username": "-rf"}, "not the name of an HPC account here"),
    ],
)
def test_unusable_claims_are_refused_with_a_sentence(info, sentence):
    with pytest.raises(LoginRefused) as refused:
        _authenticator().user_info_to_username(info)
    assert refused.value.status_code == 403
    assert sentence in refused.value.log_message % refused.value.args


def _check(auth, username, groups):
    model = {"name": username, "admin": None, "groups": groups, "auth_state": {}}
    return asyncio.run(auth.check_allowed(username, model))


def test_allowed_group_and_unix_account_both_needed():
    auth = _authenticator(manage_groups=True, allowed_groups={"ai-factory-users"})
    assert _check(auth, ME, ["ai-factory-users"]) is True
    with pytest.raises(LoginRefused, match="not a member of a group that may use this"):
        _check(auth, ME, ["guests"])
    with pytest.raises(LoginRefused, match="no HPC account named 'nobody-here-x'"):
        _check(auth, "nobody-here-x", ["ai-factory-users"])


def test_an_account_outside_the_factorylab_group_is_refused():
    other = "nobody" if MY_GROUP != "nogroup" else "root"
    problem = unix_account_problem(other, MY_GROUP, "the help desk")
    assert "is not enabled for notebooks" in problem and "the help desk" in problem
    assert unix_account_problem(ME, MY_GROUP, "x") is None


def test_startup_check_of_known_users_passes():
    assert asyncio.run(_authenticator().check_allowed("anyone", None)) is True


def test_discovery_against_a_keycloak_shaped_document(discovery):
    issuer = discovery.issuer
    base = issuer + "/protocol/openid-connect"
    settings = OIDCSettings(issuer=issuer, client_id="hub", client_secret_file="/s")
    assert discover_endpoints(settings) == {
        "authorize_url": base + "/auth",
        "token_url": base + "/token",
        "userdata_url": base + "/userinfo",
    }
    override = settings.model_copy(update={"userdata_url": "https://other/userinfo"})
    assert discover_endpoints(override)["userdata_url"] == "https://other/userinfo"
    discovery.document = {**discovery.document, "issuer": issuer + "/other"}
    with pytest.raises(DiscoveryError, match="copy the issuer exactly"):
        discover_endpoints(settings)
    discovery.document = {"issuer": issuer}
    with pytest.raises(DiscoveryError, match="gives no authorize_url, token_url, userdata_url"):
        discover_endpoints(settings)
    discovery.close()
    with pytest.raises(DiscoveryError, match=r"cannot read .*well-known"):
        discover_endpoints(settings, timeout=2)


def test_no_discovery_when_every_endpoint_is_set():
    settings = OIDCSettings(
        issuer="https://idp.invalid",  # never contacted
        client_id="hub",
        client_secret_file="/s",
        authorize_url="https://idp.invalid/auth",
        token_url="https://idp.invalid/token",
        userdata_url="https://idp.invalid/userinfo",
    )
    assert discover_endpoints(settings)["token_url"] == "https://idp.invalid/token"
