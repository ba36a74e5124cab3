"""What FactoryLab's spawners share about user options: the site file, the user's
entitlements, the spawn form and validation.

Both :class:`spawners.slurm.SlurmSpawner` and the profile wrapper
:class:`spawners.profiles.ProfilesSpawner` mix this in, so the form, ``opt-`` query
parameters and API bodies all end up in :func:`~spawners.session_request.parse_request`.
"""

from __future__ import annotations

import logging

from tornado import web
from traitlets import Callable, Dict, HasTraits, Unicode, Union

from .accounts import AccountDirectory, names_from_file
from .availability import ClusterStateCache, shared_cluster_state
from .entitlements import Entitlements, partition_limits, unix_groups
from .session_request import InvalidRequest, SessionRequest, parse_request
from .site import Site, cached_site
from .slurm_client import SlurmClient, SlurmError
from .spawn_form import options_from_form, render_form

log = logging.getLogger(__name__)

_directories: dict[str, AccountDirectory] = {}


def shared_account_directory(site: Site) -> AccountDirectory:
    """The hub-wide account lookup for this site (its cache is shared by all users)."""
    key = site.slurm.bin_dir
    directory = _directories.get(key)
    if directory is None or directory.settings != site.accounts:
        directory = AccountDirectory(
            SlurmClient.for_site(site),
            site.accounts,
        )
        _directories[key] = directory
    return directory


async def user_entitlements(site: Site, user: str, cluster: ClusterStateCache) -> Entitlements:
    """Everything ``user`` may choose, from the site file, their groups and Slurm."""
    groups = unix_groups(user)
    partitions = partition_limits(site, groups)
    try:
        accounts = tuple(await shared_account_directory(site).accounts_for(user, groups))
    except SlurmError as exc:
        log.warning("Cannot list the accounts of %s: %s", user, exc)
        accounts = ()
    if site.reservations.source == "slurm":
        state = await cluster.get()
        reservations = tuple(
            r.name for r in state.reservations if r.active and r.usable_by(user, accounts, groups)
        )
    elif site.reservations.source == "file":
        settings = site.reservations
        reservations = tuple(names_from_file(settings.by_user, settings.by_group, user, groups))
    else:
        reservations = ()
    candidates = tuple(
        key
        for key, profile in site.profiles.items()
        if (not profile.groups or set(profile.groups) & groups) and profile.partition in partitions
    )
    draft = Entitlements(user, groups, partitions, candidates, accounts, reservations)
    usable = []
    for key in candidates:  # hide profiles this user's limits, accounts or reservations rule out
        try:
            parse_request({"profile": key}, site, draft)
        except InvalidRequest:
            continue
        usable.append(key)
    return Entitlements(user, groups, partitions, tuple(usable), accounts, reservations)


class LinkPrefillsForm(Exception):
    """A spawn link chose settings: the form shows them and waits for the user's Start."""

    jupyterhub_message = (
        "The link you followed chose the settings below. Check them and press Start."
    )

    def __str__(self) -> str:
        return self.jupyterhub_message


class SessionOptionsMixin(HasTraits):
    """Site file, entitlements, spawn form and validation for a FactoryLab spawner."""

    site_file = Unicode(
        "/etc/factorylab/site.yaml",
        help="Path of the FactoryLab site file (validated at hub start). "
        "Partitions, images, profiles, limits and Slurm settings come from it.",
    ).tag(config=True)

    options_form = Union(
        [Unicode(), Callable()],
        help="The spawn form. FactoryLab's default renders profile cards, an advanced section "
        "and what is free now (spawners/templates/form/spawn_form.html.j2).",
    ).tag(config=True)

    refused_options = Dict(
        help="The last choice that was refused, shown again in the form so that nothing the "
        "user typed is lost (memory only; the database keeps the last accepted choice)."
    )

    @property
    def site(self) -> Site:
        """The validated site file (re-read when it changes)."""
        return cached_site(self.site_file)

    @property
    def cluster(self) -> ClusterStateCache:
        """The hub-wide cache of free resources and reservations."""
        return shared_cluster_state(self.site)

    async def entitlements(self) -> Entitlements:
        """What this spawner's user may choose."""
        return await user_entitlements(self.site, self.user.name, self.cluster)

    async def validate_options(self, user_options: dict) -> SessionRequest:
        """Parse ``user_options`` against the site, the user's rights and the live cluster.

        Raises :class:`~spawners.session_request.InvalidRequest`.
        """
        allowed = await self.entitlements()
        state = await self.cluster.get()
        live = state.partitions if state.error is None else None
        return parse_request(user_options or {}, self.site, allowed, live)

    def refuse(self, exc: InvalidRequest, user_options: dict, accepted: dict) -> web.HTTPError:
        """Remember a refused choice for the form, restore the accepted one, build the 400."""
        self.refused_options = dict(user_options or {})
        # JupyterHub has already stored these options for reuse by the next plain Start;
        # put back the last accepted ones, so a refused choice is never replayed.
        if self.orm_spawner is not None:
            self.orm_spawner.user_options = dict(accepted)
            self.db.commit()
        message = f"Your session was not submitted. {exc}"
        error = web.HTTPError(400, message)
        error.jupyterhub_message = message  # shown as-is above the form
        return error

    async def render_options_form(self) -> str:
        """The spawn form for this user: cards, advanced fields, what is free now."""
        allowed = await self.entitlements()
        state = await self.cluster.get()
        chosen = self.refused_options or dict(self.user_options or {})
        try:
            return render_form(self.site, allowed, state, chosen, self.static_url)
        except InvalidRequest as exc:
            raise web.HTTPError(403, f"You cannot start a session here: {exc}") from None

    @property
    def static_url(self) -> str:
        """Where the hub serves the form's JS and CSS."""
        base = self.hub.base_url if self.hub is not None else "/hub/"
        return f"{base.rstrip('/')}/factorylab/static"

    def _options_form_default(self):
        return lambda spawner: spawner.render_options_form()

    def options_from_form(self, formdata: dict) -> dict:
        """User options from the posted form (see :func:`spawners.spawn_form.options_from_form`)."""
        return options_from_form(formdata)

    def options_from_query(self, query_data: dict) -> dict:
        """``/hub/spawn?opt-profile=...`` fills in the form; it never starts a session.

        A GET can come from any page on the web (a link, an image tag), so it must not
        submit a job with options an attacker chose. The options prefill the form, and
        starting takes the form's own same-site POST (with its XSRF token). JupyterHub
        renders the form when this raises; the exception's message is shown above it.
        """
        self.refused_options = options_from_form(query_data)  # what the form shows
        raise LinkPrefillsForm()
