"""Log users in through the site's OpenID Connect provider, into their own Unix account.

:class:`FactoryLabOAuthenticator` is oauthenticator's ``GenericOAuthenticator`` with
what an HPC site needs on top: a mapping from the provider's username claim to Unix
usernames, and a login that only succeeds for an existing Unix account in the
FactoryLab group. Everyone else gets a page that says why, and no server.

Names are exact: a claim is looked up in ``username_map`` as it is, an unmapped claim
must already be a Unix username, and nothing is lower-cased (``Demo05`` at the provider
is refused, never made into ``demo05``).
"""

from __future__ import annotations

import json
import pwd
import urllib.error
import urllib.request

from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from traitlets import Dict, TraitError, Unicode, validate

from spawners.session.entitlements import unix_groups
from spawners.site.auth import OIDCSettings, username_map_problems
from spawners.site.types import is_valid_username

DISCOVERY_PATH = "/.well-known/openid-configuration"


class LoginRefused(web.HTTPError):
    """A 403 whose message is a sentence for the user (JupyterHub shows it on its page)."""

    def __init__(self, message: str):
        super().__init__(403, "%s", message)


class FactoryLabOAuthenticator(GenericOAuthenticator):
    """``GenericOAuthenticator`` that lands each user in their own Unix account."""

    username_map = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="Exact username-claim value -> Unix username, for users whose name at the "
        "identity provider differs from their HPC account. Unlisted users keep the claim's "
        "value, which must then be a Unix username itself.",
    ).tag(config=True)

    unix_group = Unicode(
        "factorylab-users",
        help="Unix group a user's account must belong to: the hub may submit jobs only as "
        "its members (sudoers).",
    ).tag(config=True)

    support_contact = Unicode(
        "your site's support team",
        help="Who users are told to ask when their login works but they have no account.",
    ).tag(config=True)

    @validate("username_map")
    def _unambiguous_map(self, proposal: dict) -> dict[str, str]:
        problems = username_map_problems(proposal["value"])
        if problems:
            raise TraitError("; ".join(problems))
        return proposal["value"]

    def normalize_username(self, username: str) -> str:
        """``username`` unchanged: no lower-casing, and no second pass through the map.

        JupyterHub's default lower-cases and applies ``username_map`` again; here the
        claim was mapped once, exactly, by :meth:`user_info_to_username`.
        """
        return username

    def user_info_to_username(self, user_info: dict) -> str:
        """The Unix username for the provider's user: the claim, mapped by exact value."""
        if callable(self.username_claim):
            claim = self.username_claim(user_info)
        else:
            claim = user_info.get(self.username_claim)
        if not claim or not isinstance(claim, str):
            self.log.error("No %r claim in the user info: %s", self.username_claim, user_info)
            raise LoginRefused(
                f"Your identity provider did not tell us your username (claim "
                f"'{self.username_claim}'). Please contact {self.support_contact}."
            )
        username = self.username_map.get(claim)
        if username is None:
            self._refuse_near_misses(claim)
            username = claim
        if not is_valid_username(username):
            self.log.warning("Refusing %r: %r is not a Unix username", claim, username)
            raise LoginRefused(
                f"You signed in as '{claim}', which is not the name of an HPC account here "
                "(names here are lower-case and must match exactly). Please ask "
                f"{self.support_contact} to link your login to your account."
            )
        return username

    def _refuse_near_misses(self, claim: str) -> None:
        """Refuse an unmapped claim that the map would take for another login."""
        folded = claim.casefold()
        near = [key for key in self.username_map if key.casefold() == folded]
        if near:
            self.log.warning("Refusing %r: it differs only in case from mapped %r", claim, near)
            raise LoginRefused(
                f"You signed in as '{claim}', which differs only in upper/lower case from a "
                "login linked to an HPC account here, so it is not used for any account. "
                f"Please ask {self.support_contact} to check your name at the identity "
                "provider and the link to your account."
            )
        if claim in self.username_map.values():
            self.log.warning("Refusing %r: that account is mapped from another login", claim)
            raise LoginRefused(
                f"You signed in as '{claim}', but the HPC account '{claim}' is linked to a "
                f"different login here. Please ask {self.support_contact} to link your login "
                "to your own account."
            )

    async def check_allowed(self, username: str, auth_model: dict | None) -> bool:
        """Allowed groups first (oauthenticator), then a Unix account in ``unix_group``."""
        if auth_model is None:  # JupyterHub's start-up check of known users
            return True
        if not await super().check_allowed(username, auth_model):
            groups = ", ".join(sorted(self.allowed_groups)) or "none"
            raise LoginRefused(
                f"You signed in as '{username}', but you are not a member of a group that "
                f"may use this service ({groups}). Ask your project's manager to add you."
            )
        self._require_unix_account(username)
        return True

    def check_blocked_users(self, username: str, auth_model: dict | None = None) -> bool:
        """JupyterHub's blocked users; with ``allow_all``, also the Unix account check.

        JupyterHub skips :meth:`check_allowed` when ``allow_all`` is on, so the account
        check runs here then: ``allow_all`` lets in any group, never any account.
        """
        if not super().check_blocked_users(username, auth_model):
            return False
        if self.allow_all and auth_model is not None:
            self._require_unix_account(username)
        return True

    def _require_unix_account(self, username: str) -> None:
        problem = unix_account_problem(username, self.unix_group, self.support_contact)
        if problem:
            self.log.warning("Refusing %s: %s", username, problem)
            raise LoginRefused(problem)


def unix_account_problem(username: str, group: str, contact: str) -> str | None:
    """Why ``username`` cannot get a session here, as a sentence; None if it can."""
    try:
        pwd.getpwnam(username)
    except KeyError:
        return (
            f"Your login worked, but there is no HPC account named '{username}' on this "
            f"system, so no server can be started for you. Please ask {contact} to create "
            "your account, or to link your login to the account you have."
        )
    if group not in unix_groups(username):
        return (
            f"Your login worked, but the HPC account '{username}' is not enabled for "
            f"notebooks (Unix group {group}). Please ask {contact} to enable it."
        )
    return None


class DiscoveryError(RuntimeError):
    """The provider's discovery document could not be used; ``str()`` says why."""


def discover_endpoints(settings: OIDCSettings, timeout: float = 10) -> dict[str, str]:
    """authorize/token/userinfo URLs: the site file's, else the provider's discovery."""
    found: dict[str, str] = {}
    if not settings.endpoints_known:
        url = settings.issuer + DISCOVERY_PATH
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                document = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DiscoveryError(
                f"auth.oidc.issuer: cannot read {url} ({getattr(exc, 'reason', exc)}); check "
                "the issuer URL and that the hub can reach it, or set authorize_url, "
                "token_url and userdata_url"
            ) from None
        if document.get("issuer", "").rstrip("/") != settings.issuer:
            raise DiscoveryError(
                f"auth.oidc.issuer: {url} names the issuer {document.get('issuer')!r}, not "
                f"{settings.issuer!r}; copy the issuer exactly as the provider states it"
            )
        found = {
            "authorize_url": document.get("authorization_endpoint", ""),
            "token_url": document.get("token_endpoint", ""),
            "userdata_url": document.get("userinfo_endpoint", ""),
        }
    endpoints = {
        key: getattr(settings, key) or found.get(key, "")
        for key in ("authorize_url", "token_url", "userdata_url")
    }
    missing = [key for key, value in endpoints.items() if not value]
    if missing:
        raise DiscoveryError(
            f"auth.oidc: the provider's discovery gives no {', '.join(missing)}; set "
            f"{' and '.join(missing)} in the site file"
        )
    return endpoints
