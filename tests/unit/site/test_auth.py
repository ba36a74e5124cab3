"""The site file's auth section and the client secret file."""

import pytest

from spawners.site.auth import SecretFileError, read_client_secret
from spawners.site.loader import SiteFileError, parse_site


def _with(site_data: dict, **sections) -> dict:
    return {**site_data, **sections}


@pytest.fixture
def base(site) -> dict:
    return site.model_dump(mode="json", exclude={"auth"})


OIDC = {
    "issuer": "https://idp.example.org/realms/ai-factory",
    "client_id": "factorylab",
    "client_secret_file": "/etc/factorylab/oidc-client-secret",
    "username_claim_trusted": True,
    "allowed_groups": ["ai-factory-users"],
}


def _oidc_error(base: dict, oidc: dict) -> str:
    with pytest.raises(SiteFileError) as error:
        parse_site(_with(base, auth={"method": "oidc", "oidc": oidc}), "site.yaml")
    return str(error.value)


def test_pam_is_the_default(site):
    assert site.auth.method == "pam" and site.auth.oidc is None


def test_a_keycloak_style_oidc_section_is_valid(base):
    site = parse_site(_with(base, auth={"method": "oidc", "oidc": OIDC}))
    oidc = site.auth.oidc
    assert oidc.scopes == ["openid", "profile", "email"]
    assert oidc.username_claim == "preferred_username" and oidc.groups_claim == "groups"
    assert oidc.username_claim_trusted and not oidc.allow_all
    assert not oidc.endpoints_known  # discovered at hub start


@pytest.mark.parametrize(
    "claim", ["preferred_username", "name", "nickname", "given_name", "email", "upn", None]
)
def test_a_claim_users_can_edit_needs_the_admins_word(base, claim):
    oidc = {key: value for key, value in OIDC.items() if key != "username_claim_trusted"}
    if claim:  # None: the default, preferred_username
        oidc["username_claim"] = claim
    message = _oidc_error(base, oidc)
    shown = claim or "preferred_username"
    assert f"auth.oidc.username_claim_trusted: username_claim is {shown!r}" in message
    assert "users can often change themselves at their identity provider" in message
    assert "use 'sub' or a directory attribute" in message
    assert "or set username_claim_trusted: true if your provider does not let" in message
    trusted = parse_site(_with(base, auth={"method": "oidc", "oidc": {**oidc, **OIDC}}))
    assert trusted.auth.oidc.username_claim_trusted


def test_a_claim_users_cannot_edit_needs_no_statement(base):
    oidc = {**OIDC, "username_claim": "sub", "username_claim_trusted": False}
    site = parse_site(_with(base, auth={"method": "oidc", "oidc": oidc}))
    assert site.auth.oidc.username_claim == "sub"


def test_username_map_keys_equal_but_for_case_are_refused(base):
    username_map = {"Ada.Lovelace@uni.example": "demo18", "ada.lovelace@uni.example": "demo19"}
    message = _oidc_error(base, {**OIDC, "username_map": username_map})
    assert (
        "auth.oidc.username_map: username_map: the keys 'Ada.Lovelace@uni.example' and "
        "'ada.lovelace@uni.example' differ only in upper/lower case" in message
    )
    assert "keep only the spelling the provider sends in username_claim" in message


def test_two_logins_for_one_unix_account_are_refused(base):
    username_map = {"ada@uni.example": "demo18", "lovelace@uni.example": "demo18"}
    message = _oidc_error(base, {**OIDC, "username_map": username_map})
    assert "'ada@uni.example' and 'lovelace@uni.example' both map to 'demo18'" in message
    assert "delete 'lovelace@uni.example' or map it to that person's own account" in message


def test_empty_allowed_groups_needs_allow_all(base):
    oidc = {**OIDC, "allowed_groups": []}
    message = _oidc_error(base, oidc)
    assert "auth.oidc.allow_all: allowed_groups is empty, so nobody could log in" in message
    assert "or set allow_all: true to let in everyone the provider authenticates" in message
    both = _oidc_error(base, {**oidc, "username_claim_trusted": False})  # reported together
    assert "username_claim_trusted: username_claim is" in both and "nobody could" in both
    site = parse_site(_with(base, auth={"method": "oidc", "oidc": {**oidc, "allow_all": True}}))
    assert site.auth.oidc.allow_all and site.auth.oidc.allowed_groups == []


def test_allow_all_with_allowed_groups_is_a_contradiction(base):
    message = _oidc_error(base, {**OIDC, "allow_all": True})
    assert "auth.oidc.allow_all: allow_all: true lets in everyone" in message
    assert "allowed_groups ['ai-factory-users'] would have no effect" in message


@pytest.mark.parametrize(
    ("oidc", "message"),
    [
        ({**OIDC, "issuer": "http://idp.example.org"}, "an identity provider must use https"),
        ({**OIDC, "issuer": "idp.example.org"}, "is not an http(s) URL"),
        ({**OIDC, "client_secret_file": "secret.txt"}, "must be an absolute path"),
        ({**OIDC, "username_map": {"ada@uni": "Ada Lovelace"}}, "is not a Unix username"),
        ({**OIDC, "token_url": "http://idp.example.org/token"}, "token_url"),
        ({**OIDC, "client_secret": "inline"}, "auth.oidc.client_secret: Extra inputs"),
    ],
)
def test_bad_oidc_settings_name_the_key_and_the_fix(base, oidc, message):
    with pytest.raises(SiteFileError) as error:
        parse_site(_with(base, auth={"method": "oidc", "oidc": oidc}), "site.yaml")
    assert message in str(error.value) and "site.yaml" in str(error.value)


def test_oidc_method_needs_its_section(base):
    with pytest.raises(SiteFileError, match="there is no oidc section"):
        parse_site(_with(base, auth={"method": "oidc"}))


def test_http_issuer_is_accepted_on_loopback_only(base):
    oidc = {**OIDC, "issuer": "http://127.0.0.1:9400/"}
    site = parse_site(_with(base, auth={"method": "oidc", "oidc": oidc}))
    assert site.auth.oidc.issuer == "http://127.0.0.1:9400"


def test_tls_and_internal_ssl_settings(base):
    base = _with(base, demo={"enabled": False})  # a public URL: no demo users
    hub = {**base["hub"], "public_url": "https://hub.example.org", "internal_ssl": True}
    site = parse_site(_with(base, hub={**hub, "tls_cert_file": "/c", "tls_key_file": "/k"}))
    assert site.hub.internal_ssl
    with pytest.raises(SiteFileError, match="set both"):
        parse_site(_with(base, hub={**hub, "tls_cert_file": "/c"}))
    with pytest.raises(SiteFileError, match="must start with https"):
        parse_site(_with(base, hub={**base["hub"], "tls_cert_file": "/c", "tls_key_file": "/k"}))
    with pytest.raises(SiteFileError, match="is not DNS:<name> or IP:<address>"):
        parse_site(_with(base, hub={**hub, "internal_ssl_alt_names": ["node01; rm"]}))


def test_client_secret_file_is_read_and_checked(tmp_path):
    secret = tmp_path / "secret"
    with pytest.raises(SecretFileError, match="does not exist"):
        read_client_secret(str(secret))
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with pytest.raises(SecretFileError, match="readable by every user on the host; chmod 0640"):
        read_client_secret(str(secret))
    secret.chmod(0o640)
    assert read_client_secret(str(secret)) == "s3cret"
    secret.write_text("\n")
    with pytest.raises(SecretFileError, match="is empty"):
        read_client_secret(str(secret))


def test_check_site_checks_the_client_secret_file(base, tmp_path, capsys):
    import yaml

    from spawners.cli import main

    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    oidc = {**OIDC, "client_secret_file": str(secret)}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(_with(base, auth={"method": "oidc", "oidc": oidc})))
    assert main(["check-site", str(path)]) == 2
    assert "readable by every user on the host; chmod 0640" in capsys.readouterr().err
    secret.chmod(0o640)
    assert main(["check-site", str(path)]) == 0
    assert "Login: oidc" in capsys.readouterr().out
