"""The site file's ``auth:`` section: who may log in, and through what.

``method: pam`` (the default) checks Unix passwords on the hub host. ``method: oidc``
sends users to the site's identity provider (Keycloak, EGI Check-in, a university IdP)
and maps each login to the user's own Unix account; see :mod:`spawners.oidc_login`.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

UNIX_USERNAME = r"^[a-z_][a-z0-9_-]{0,31}$"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class OIDCSettings(_Strict):
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
        "preferred_username", min_length=1, description="Claim that names the user."
    )
    username_map: dict[str, str] = Field(
        default_factory=dict,
        description="Claim value -> Unix username, for users whose IdP name differs from "
        "their HPC account. Others keep the claim value.",
    )
    groups_claim: str = Field("groups", min_length=1, description="Claim that lists groups.")
    allowed_groups: list[str] = Field(
        default_factory=list,
        description="IdP groups (or projects) whose members may log in; empty: anyone the "
        "provider authenticates, provided they have a Unix account in users.group.",
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

    @field_validator("username_map")
    @classmethod
    def _unix_names(cls, value: dict[str, str]) -> dict[str, str]:
        for claim, username in value.items():
            if not re.fullmatch(UNIX_USERNAME, username):
                raise ValueError(
                    f"username_map: {claim!r} maps to {username!r}, which is not a Unix "
                    "username (lower-case letters, digits, _ and -; at most 32)"
                )
        return value

    @property
    def endpoints_known(self) -> bool:
        """Whether all three endpoints are set, so no discovery is needed."""
        return bool(self.authorize_url and self.token_url and self.userdata_url)


class AuthSettings(_Strict):
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
