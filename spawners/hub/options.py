"""What FactoryLab's spawners share about user options: the site file, the user's
entitlements, the spawn form, and the one ``apply_user_options`` hook.

Both :class:`spawners.hub.spawner.SlurmSpawner` and the profile wrapper
:class:`spawners.hub.profiles.ProfilesSpawner` mix this in, so the form, ``opt-`` query
parameters and API bodies all end up in :func:`spawners.session.request.parse_request`.
"""

from __future__ import annotations

import logging

from traitlets import Callable, Dict, HasTraits, Unicode, Union

from spawners.hub import observe
from spawners.hub.course_book import CourseBookError, open_courses, shared_course_book
from spawners.hub.errors import LinkPrefillsForm, SessionError
from spawners.hub.form import options_from_form, render_form
from spawners.session.course_checks import course_entitlements
from spawners.session.courses import (
    closed_sentence,
    held_sentence,
    is_member,
    is_open,
    session_options,
    utcnow,
)
from spawners.session.entitlements import Entitlements, unix_groups
from spawners.session.request import (
    InvalidRequest,
    SessionRequest,
    entitlements_for,
    parse_request,
)
from spawners.session.site_checks import SITE_CHECKS
from spawners.site.course_sections import Course
from spawners.site.loader import cached_site
from spawners.site.model import Site
from spawners.slurm.accounts import names_from_file
from spawners.slurm.client import SlurmError
from spawners.slurm.cluster import ClusterStateCache
from spawners.slurm.services import shared_account_directory, shared_cluster_state

log = logging.getLogger(__name__)


async def user_entitlements(site: Site, user: str, cluster: ClusterStateCache) -> Entitlements:
    """Everything ``user`` may choose: the site file's rules for their groups, with the
    accounts and reservations Slurm (or the site file) gives them."""
    groups = unix_groups(user)
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
    return entitlements_for(site, user, groups, accounts, reservations)


async def check_request(
    site: Site,
    user: str,
    user_options: dict,
    cluster: ClusterStateCache,
    course: Course | None = None,
) -> SessionRequest:
    """``user_options`` checked as every spawn checks them: against the site file, the
    user's entitlements (computed once here) and what the cluster has free now. A
    course's reservation and profile are open to its members (course_entitlements).

    Raises :class:`~spawners.session.request.InvalidRequest`.
    """
    allowed = await user_entitlements(site, user, cluster)
    if course is not None:
        allowed = course_entitlements(allowed, course, site)
    state = await cluster.get()
    live = state.partitions if state.error is None else None
    return parse_request(user_options or {}, site, allowed, live)


async def apply_user_options(spawner: SessionOptionsMixin, user_options: dict) -> None:
    """JupyterHub's ``apply_user_options`` hook: validate before anything is submitted.

    A refusal is an HTTP 400 whose message names the field and the fix; the API caller
    or the form sees it, and no job is submitted. A valid choice goes to the spawner's
    ``accept_request`` (the profile wrapper builds the profile's child there).
    A course's named server takes the course's request whatever was sent, and only
    for its members, inside its window.
    """
    course = spawner.course
    if course is not None:
        user_options = spawner.course_options(course)
    try:
        request = await spawner.validate_options(user_options)
    except InvalidRequest as exc:
        raise spawner.refuse(exc, user_options) from None
    spawner.accept_request(request, user_options)
    spawner.refused_options = {}


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
        "and what is free now (spawners/hub/templates/form/spawn_form.html.j2).",
    ).tag(config=True)

    refused_options = Dict(
        help="The last choice that was refused, shown again in the form so that nothing the "
        "user typed is lost (memory only; the database keeps the last accepted choice)."
    )

    @property
    def site(self) -> Site:
        """The validated site file (re-read when it changes)."""
        return cached_site(self.site_file, SITE_CHECKS)

    @property
    def cluster(self) -> ClusterStateCache:
        """The hub-wide cache of free resources and reservations."""
        return shared_cluster_state(self.site)

    async def entitlements(self) -> Entitlements:
        """What this spawner's user may choose."""
        return await user_entitlements(self.site, self.user.name, self.cluster)

    async def validate_options(self, user_options: dict) -> SessionRequest:
        """Parse ``user_options`` as :func:`check_request` does, for this spawner's user."""
        return await check_request(
            self.site, self.user.name, user_options, self.cluster, self.course
        )

    @property
    def course(self) -> Course | None:
        """The course whose named server this is, or None (also when the hub cannot read
        its courses: that is logged, and ordinary servers are not held up by it)."""
        name = getattr(self, "name", "") or ""
        if not name:
            return None
        try:
            return shared_course_book(self.site).get(self.site, name)
        except CourseBookError as exc:
            log.error("Courses are unavailable: %s", exc)
            return None

    def course_options(self, course: Course) -> dict[str, str]:
        """The course's request for this member now; a 403 for others, a 400 outside
        the course's window (each with a sentence)."""
        now = utcnow()
        if not is_member(course, self.user.name):
            raise SessionError(
                f"You are not a member of the course {course.title!r}, so its session is "
                f"not yours to start; ask its instructor to add you.",
                reason="not-a-member",
                status_code=403,
            )
        if not is_open(course, now):
            raise SessionError(
                closed_sentence(course, now), reason="course-closed", status_code=400
            )
        if shared_course_book(self.site).control(course.name).held:
            raise SessionError(held_sentence(course), reason="course-held", status_code=409)
        return session_options(course, now)

    def refuse(self, exc: InvalidRequest, user_options: dict) -> SessionError:
        """Remember a refused choice for the form, restore the accepted one, build the 400."""
        accepted = self.accepted_options
        self.refused_options = dict(user_options or {})
        observe.refused(exc.field)
        # JupyterHub has already stored these options for reuse by the next plain Start;
        # put back the last accepted ones, so a refused choice is never replayed.
        if self.orm_spawner is not None:
            self.orm_spawner.user_options = dict(accepted)
            self.db.commit()
        return SessionError(
            f"Your session was not submitted. {exc}", reason="invalid-options", status_code=400
        )

    async def render_options_form(self) -> str:
        """The spawn form for this user: cards, advanced fields, what is free now.

        A course's server has no form: it starts with the course's request.
        """
        if self.course is not None:
            return ""
        allowed = await self.entitlements()
        state = await self.cluster.get()
        chosen = self.refused_options or dict(self.user_options or {})
        try:
            return render_form(
                self.site, allowed, state, chosen, self.static_url, courses=self.course_cards()
            )
        except InvalidRequest as exc:
            raise SessionError(
                f"You cannot start a session here: {exc}", reason="no-entitlement", status_code=403
            ) from None

    def course_cards(self) -> list[dict[str, str]]:
        """This user's courses that are open now, for the form's course cards."""
        base = self.hub.base_url if self.hub is not None else "/hub/"
        return [
            {
                "name": course.name,
                "title": course.title,
                "ends": course.ends_at.isoformat(timespec="minutes"),
                "url": f"{base.rstrip('/')}/course/{course.name}",
            }
            for course in open_courses(self.site, self.user.name, utcnow())
        ]

    @property
    def static_url(self) -> str:
        """Where the hub serves the form's JS and CSS."""
        base = self.hub.base_url if self.hub is not None else "/hub/"
        return f"{base.rstrip('/')}/factorylab/static"

    def _options_form_default(self):
        return lambda spawner: spawner.render_options_form()

    def options_from_form(self, formdata: dict) -> dict:
        """User options from the posted form (see :func:`spawners.hub.form.options_from_form`)."""
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
