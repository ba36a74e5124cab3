"""The site file's ``auth:`` section: who may log in, and through what.

``method: pam`` (the default) checks Unix passwords on the hub host. ``method: oidc``
sends users to the site's identity provider (Keycloak, EGI Check-in, a university IdP)
and maps each login to the user's own Unix account; see :mod:`spawners.hub.login`.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from spawners.site.types import UNIX_USERNAME, Strict

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Standard OIDC claims that users can often edit themselves at their identity provider.
EDITABLE_CLAIMS = frozenset(
    {
        "preferred_username",
        "name",
        "nickname",
        "given_name",
        "family_name",
        "middle_name",
        "email",  # editable in Keycloak's account console by default
        "upn",
    }
)


def _https_or_loopback(key: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{key}: {url!r} is not an http(s) URL; give the full URL")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(
            f"{key}: {url!r} is plain http; an identity provider must use https "
            "(http is accepted on loopback only, for tests)"
        )
    return url.rstrip("/")


class OIDCSettings(Strict):
    """An OpenID Connect identity provider, used through oauthenticator's
    ``GenericOAuthenticator``."""

    issuer: str = Field(
        description="The issuer URL, e.g. https://idp.example.org/realms/ai-factory. Its "
        "/.well-known/openid-configuration gives the endpoints not set below."
    )
    client_id: str = Field(min_length=1, description="The hub's client id at the provider.")
    client_secret_file: str = Field(
        description="File holding the client secret (one line), readable by the hub's user "
        "and nobody else: install -m 0640 -o root -g factorylab."
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        min_length=1,
        description="Scopes to request. Add the one that releases the groups claim "
        "if your provider needs it (Keycloak: a 'groups' client scope).",
    )
    username_claim: str = Field(
        "preferred_username",
        min_length=1,
        description="Claim that names the user. It must be one users cannot edit: 'sub' or "
        "a directory attribute. preferred_username, name, nickname, given_name, family_name "
        "and middle_name need username_claim_trusted: true.",
    )
    username_claim_trusted: bool = Field(
        False,
        validate_default=True,
        description="The admin's statement that users cannot edit username_claim at the "
        "provider. Required for the claims users can often edit (preferred_username, …).",
    )
    username_map: dict[str, str] = Field(
        default_factory=dict,
        description="Exact claim value -> Unix username, for users whose IdP name differs "
        "from their HPC account. Others keep the claim value, which must then be a Unix "
        "username itself; nothing is lower-cased.",
    )
    groups_claim: str = Field("groups", min_length=1, description="Claim that lists groups.")
    allowed_groups: list[str] = Field(
        default_factory=list,
        description="IdP groups (or projects) whose members may log in. Empty only with "
        "allow_all: true.",
    )
    allow_all: bool = Field(
        False,
        validate_default=True,
        description="Let in anyone the provider authenticates (still only into a Unix "
        "account in users.group); then allowed_groups must be empty.",
    )
    admin_groups: list[str] = Field(
        default_factory=list, description="IdP groups whose members are hub admins."
    )
    login_service: str = Field(
        "your institution", description='The login button says "Sign in with …".'
    )
    authorize_url: str | None = Field(None, description="Override the discovered endpoint.")
    token_url: str | None = Field(None, description="Override the discovered endpoint.")
    userdata_url: str | None = Field(None, description="Override the discovered endpoint.")
    validate_server_cert: bool = Field(
        True, description="Verify the provider's TLS certificate. Turn off only for tests."
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        return _https_or_loopback("issuer", value)

    @field_validator("authorize_url", "token_url", "userdata_url")
    @classmethod
    def _endpoint_url(cls, value: str | None, info) -> str | None:
        return None if value is None else _https_or_loopback(info.field_name, value)

    @field_validator("client_secret_file")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not os.path.isabs(value):
            raise ValueError(f"client_secret_file: {value!r} must be an absolute path")
        return value

    @field_validator("username_claim_trusted")
    @classmethod
    def _claim_users_cannot_edit(cls, value: bool, info) -> bool:
        claim = info.data.get("username_claim")
        if claim in EDITABLE_CLAIMS and not value:
            raise ValueError(
                f"username_claim is {claim!r}, which users can often change themselves at "
                "their identity provider, and whoever sets it to another person's name gets "
                "that person's HPC account; use 'sub' or a directory attribute users cannot "
                "edit (such as a uid claim from LDAP), or set username_claim_trusted: true if "
                f"your provider does not let users edit {claim!r} (Keycloak: realm settings, "
                "'Edit username' off)"
            )
        return value

    @field_validator("username_map")
    @classmethod
    def _unix_names(cls, value: dict[str, str]) -> dict[str, str]:
        for claim, username in value.items():
            if not re.fullmatch(UNIX_USERNAME, username):
                raise ValueError(
                    f"username_map: {claim!r} maps to {username!r}, which is not a Unix "
                    "username (lower-case letters, digits, _ and -; at most 32)"
                )
        problems = username_map_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("allow_all")
    @classmethod
    def _someone_may_log_in(cls, value: bool, info) -> bool:
        groups = info.data.get("allowed_groups")
        if groups is None:  # allowed_groups itself is invalid and reported
            return value
        if not groups and not value:
            raise ValueError(
                "allowed_groups is empty, so nobody could log in; list the IdP groups whose "
                "members may use the hub (e.g. allowed_groups: [ai-factory-users]), or set "
                "allow_all: true to let in everyone the provider authenticates who has a "
                "Unix account in users.group"
            )
        if groups and value:
            raise ValueError(
                f"allow_all: true lets in everyone the provider authenticates, so "
                f"allowed_groups {groups} would have no effect; remove allow_all, or remove "
                "allowed_groups to let everyone in"
            )
        return value

    @property
    def endpoints_known(self) -> bool:
        """Whether all three endpoints are set, so no discovery is needed."""
        return bool(self.authorize_url and self.token_url and self.userdata_url)


def username_map_problems(mapping: dict[str, str]) -> list[str]:
    """Why ``mapping`` (claim value -> Unix username) is ambiguous, one sentence each.

    Two keys that differ only in case, or two keys for one Unix user, would let two
    logins reach the same account; both are refused.
    """
    problems = []
    by_folded: dict[str, str] = {}
    by_user: dict[str, str] = {}
    for claim, username in mapping.items():
        other = by_folded.setdefault(claim.casefold(), claim)
        if other != claim:
            problems.append(
                f"username_map: the keys {other!r} and {claim!r} differ only in upper/lower "
                "case; logins are matched exactly, so keep only the spelling the provider "
                "sends in username_claim and delete the other"
            )
        other = by_user.setdefault(username, claim)
        if other != claim:
            problems.append(
                f"username_map: {other!r} and {claim!r} both map to {username!r}; a Unix "
                f"account may be reached from one login only, so delete {claim!r} or map it "
                "to that person's own account"
            )
    return problems


class AuthSettings(Strict):
    """How users log in."""

    method: Literal["pam", "oidc"] = Field(
        "pam", description="pam: Unix passwords on the hub host; oidc: an identity provider."
    )
    oidc: OIDCSettings | None = None

    @model_validator(mode="after")
    def _oidc_when_chosen(self) -> AuthSettings:
        if self.method == "oidc" and self.oidc is None:
            raise ValueError(
                "auth.oidc: method is oidc but there is no oidc section; add issuer, "
                "client_id and client_secret_file (see hub_config/site.example.yaml)"
            )
        return self


class SecretFileError(ValueError):
    """The client secret file cannot be used; ``str()`` says why and how to fix it."""


def read_client_secret(path: str) -> str:
    """Read the OIDC client secret, refusing a file other users could read."""
    key = "auth.oidc.client_secret_file"
    try:
        info = os.stat(path)
        with open(path) as handle:
            secret = handle.read().strip()
    except FileNotFoundError:
        raise SecretFileError(
            f"{key}: {path} does not exist; write the client secret there "
            "(install -m 0640 -o root -g factorylab)"
        ) from None
    except PermissionError:
        raise SecretFileError(
            f"{key}: {path} is not readable by the hub's user; "
            "chown root:factorylab and chmod 0640 it"
        ) from None
    if info.st_mode & stat.S_IROTH:
        raise SecretFileError(
            f"{key}: {path} is readable by every user on the host; chmod 0640 it "
            "(and rotate the secret at the provider)"
        )
    if not secret:
        raise SecretFileError(f"{key}: {path} is empty; write the client secret there")
    return secret
