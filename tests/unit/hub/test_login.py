"""Username mapping, Unix-account checks and endpoint discovery of the OIDC login."""

import asyncio
import grp
import os
import pwd

import pytest
from traitlets import TraitError

from spawners.hub.login import (
    DiscoveryError,
    FactoryLabOAuthenticator,
    LoginRefused,
    discover_endpoints,
    unix_account_problem,
)
from spawners.site.auth import OIDCSettings

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


def _settings(**changes) -> OIDCSettings:
    """Valid settings: a claim users cannot edit, and a group that may log in."""
    values = {
        "client_id": "hub",
        "client_secret_file": "/s",
        "username_claim": "sub",
        "allowed_groups": ["ai-factory-users"],
        **changes,
    }
    return OIDCSettings(**values)


def _login(auth: FactoryLabOAuthenticator, user_info: dict) -> dict | None:
    """JupyterHub's whole login (authenticate, normalize, block, allow) for ``user_info``
    from the provider; the hub creates a user only from the model this returns."""

    async def get_token_info(handler, params):
        return {"access_token": "token", "token_type": "Bearer"}

    async def token_to_user(token_info):
        return user_info

    auth.build_access_tokens_request_params = lambda handler, data: {}
    auth.get_token_info = get_token_info
    auth.token_to_user = token_to_user
    return asyncio.run(auth.get_authenticated_user(None, None))


def _sentence(refused: pytest.ExceptionInfo) -> str:
    assert refused.value.status_code == 403
    return refused.value.log_message % refused.value.args


def test_the_claim_goes_through_the_mapping():
    auth = _authenticator(username_map={"ada.lovelace@uni.example": "demo18"})
    assert auth.user_info_to_username({"preferred_username": "ada.lovelace@uni.example"}) == (
        "demo18"
    )
    assert auth.user_info_to_username({"preferred_username": "demo07"}) == "demo07"


@pytest.mark.parametrize(
    ("info", "sentence"),
    [
        ({"email": "x@y"}, "did not tell us your username (claim 'preferred_username')"),
        ({"preferred_username": "ada@uni.example"}, "not the name of an HPC account here"),
        ({"preferred_username": "-rf"}, "not the name of an HPC account here"),
        ({"preferred_username": "Demo05"}, "You signed in as 'Demo05', which is not the name"),
        ({"preferred_username": "DEMO18"}, "names here are lower-case and must match exactly"),
    ],
)
def test_unusable_claims_are_refused_with_a_sentence(info, sentence):
    with pytest.raises(LoginRefused) as refused:
        _authenticator(username_map={"grace@uni.example": "demo18"}).user_info_to_username(info)
    assert sentence in _sentence(refused)


def test_a_claim_is_never_case_folded_and_no_user_is_created():
    auth = _authenticator(manage_groups=True, allow_all=True)
    with pytest.raises(LoginRefused) as refused:
        _login(auth, {"preferred_username": f"{ME[0].upper()}{ME[1:]}", "groups": []})
    assert "which is not the name of an HPC account here" in _sentence(refused)
    # the exact name still works, and JupyterHub's normalization does not lower-case it
    assert _login(auth, {"preferred_username": ME, "groups": []})["name"] == ME
    assert auth.normalize_username("Demo05") == "Demo05"


def test_the_map_is_applied_once_and_exactly():
    auth = _authenticator(username_map={"ada@uni.example": "bob", "bob": "carol"})
    assert auth.user_info_to_username({"preferred_username": "ada@uni.example"}) == "bob"
    assert auth.normalize_username("bob") == "bob"  # JupyterHub's default maps it again
    with pytest.raises(LoginRefused):
        auth.user_info_to_username({"preferred_username": "ADA@uni.example"})


@pytest.mark.parametrize(
    ("claim", "mapped"),
    [("demo05", "Demo05"), ("ada.lovelace@uni.example", "Ada.Lovelace@uni.example")],
)
def test_a_claim_equal_to_a_mapped_key_but_for_case_is_refused(claim, mapped):
    auth = _authenticator(username_map={mapped: "demo18"})
    with pytest.raises(LoginRefused) as refused:
        auth.user_info_to_username({"preferred_username": claim})
    sentence = _sentence(refused)
    assert "differs only in upper/lower case from a login linked to an HPC account" in sentence
    assert mapped not in sentence  # another person's login is not shown


def test_an_unmapped_claim_naming_a_mapped_account_is_refused():
    auth = _authenticator(username_map={"ada@uni.example": "demo18"})
    with pytest.raises(LoginRefused) as refused:
        auth.user_info_to_username({"preferred_username": "demo18"})
    assert "the HPC account 'demo18' is linked to a different login here" in _sentence(refused)


@pytest.mark.parametrize(
    ("username_map", "message"),
    [
        ({"Ada@uni": "demo18", "ada@uni": "demo19"}, "differ only in upper/lower case"),
        ({"ada@uni": "demo18", "grace@uni": "demo18"}, "both map to 'demo18'"),
    ],
)
def test_an_ambiguous_map_is_refused_by_the_authenticator_too(username_map, message):
    with pytest.raises(TraitError, match=message):
        _authenticator(username_map=username_map)


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


def test_allow_all_admits_any_group_but_never_a_missing_account():
    auth = _authenticator(manage_groups=True, allow_all=True)
    assert _login(auth, {"preferred_username": ME, "groups": ["guests"]})["name"] == ME
    with pytest.raises(LoginRefused) as refused:
        _login(auth, {"preferred_username": "nobody-here-x", "groups": ["guests"]})
    assert "there is no HPC account named 'nobody-here-x'" in _sentence(refused)


def test_no_allowed_groups_and_no_allow_all_refuses_everyone():
    auth = _authenticator(manage_groups=True)
    with pytest.raises(LoginRefused, match="not a member of a group that may use this"):
        _login(auth, {"preferred_username": ME, "groups": ["ai-factory-users"]})


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
    settings = _settings(issuer=issuer)
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
    settings = _settings(
        issuer="https://idp.invalid",  # never contacted
        authorize_url="https://idp.invalid/auth",
        token_url="https://idp.invalid/token",
        userdata_url="https://idp.invalid/userinfo",
    )
    assert discover_endpoints(settings)["token_url"] == "https://idp.invalid/token"
