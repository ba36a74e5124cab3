"""Profiles through wrapspawner's ``ProfilesSpawner``, configured from the site file.

Each profile of the site file is a card on the spawn form and a ``ProfilesSpawner``
profile whose child is :class:`~spawners.hub.spawner.SlurmSpawner`. This subclass fixes the
plumbing that bites ``ProfilesSpawner`` + batchspawner setups:

- the job's port goes to the child that waits for it (the wrapper forwards
  :meth:`accept_port`), never to the wrapper (wrapspawner#24);
- every start builds a fresh child for the chosen profile, linked to the wrapper's
  database record, so its server URL is the current one (named servers included);
- the wrapper's ``start_timeout`` and ``poll_interval`` are the child's, not
  JupyterHub's 60 s default, which would kill sessions that wait in the queue;
- why the last session ended, and the last accepted choice, survive ``clear_state``.
"""

from __future__ import annotations

import wrapspawner
from jupyterhub.spawner import Spawner
from traitlets import Type, default

from spawners.hub import state as saved
from spawners.hub.options import SessionOptionsMixin, apply_user_options
from spawners.hub.spawner import SlurmSpawner
from spawners.session.request import SessionRequest

CUSTOM_PROFILE = ("Custom", "")


class ProfilesSpawner(SessionOptionsMixin, wrapspawner.ProfilesSpawner):
    """FactoryLab's profile spawner: site-file profiles, each a SlurmSpawner child."""

    child_class = Type(
        SlurmSpawner,
        Spawner,
        help="Spawner class of a child when a profile names none (the Custom card).",
    ).tag(config=True)

    @default("profiles")
    def _profiles_default(self) -> list[tuple]:
        child_config = {"site_file": self.site_file}
        return [
            (profile.display_name, key, SlurmSpawner, child_config)
            for key, profile in self.site.profiles.items()
        ] + [(*CUSTOM_PROFILE, SlurmSpawner, child_config)]

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return apply_user_options

    def accept_request(self, request: SessionRequest, user_options: dict) -> None:
        """A validated choice: build the profile's child, which keeps it for its start."""
        self.start_fresh_child(request.profile or "")
        self.child_spawner.accept_request(request, user_options)

    @default("start_timeout")
    def _start_timeout_default(self) -> int:
        slurm = self.site.slurm
        return slurm.max_queue_wait + slurm.server_start_timeout + 60

    @default("poll_interval")
    def _poll_interval_default(self) -> int:
        return 5  # the child's poll() reads the shared snapshot; it costs Slurm nothing

    # -- the child -----------------------------------------------------------
    def select_profile(self, profile: object) -> None:
        """Set the child's class and config for ``profile`` (Custom if unknown)."""
        self.child_class = SlurmSpawner
        self.child_config = {"site_file": self.site_file}
        for _display, key, spawner_class, config in self.profiles:
            if key == profile:
                self.child_class, self.child_config = spawner_class, dict(config)
                return

    def construct_child(self) -> Spawner:
        """Build the child for ``child_profile`` (set from a validated choice or the
        saved state; wrapspawner would read the unvalidated ``user_options`` here)."""
        self.select_profile(self.child_profile)
        return wrapspawner.WrapSpawner.construct_child(self)

    def start_fresh_child(self, profile: str) -> None:
        """Build the child for this start, keeping only what outlives a session."""
        if self.child_spawner is not None:
            self.child_state = self.child_spawner.get_state()
            self.child_spawner = None
        self.child_state = saved.kept(self.child_state)
        self.child_profile = profile
        self.construct_child()

    @property
    def accepted_options(self) -> dict:
        """The last choice that passed validation (what a plain Start reuses)."""
        if self.child_spawner is not None:
            return dict(self.child_spawner.accepted_options)
        return dict(self.child_state.get(saved.ACCEPTED_OPTIONS, {}))

    def slurm_session(self) -> SlurmSpawner | None:
        """The child that runs the session, if there is one."""
        return self.child_spawner

    async def move_certs(self, paths: dict) -> dict:
        """Internal SSL: the child (built by apply_user_options) sends them with its job."""
        if self.child_spawner is None:
            return await super().move_certs(paths)
        return await self.child_spawner.move_certs(paths)

    def accept_port(self, port: int) -> bool:
        """Forward the job's port report to the child that waits for it."""
        child = self.child_spawner
        return bool(child is not None and child.accept_port(port))

    def accept_log_tail(self, text: str) -> bool:
        """Forward a failing job's log tail to the child that runs it."""
        child = self.child_spawner
        return bool(child is not None and child.accept_log_tail(text))

    def owns_token(self, token_id: int) -> bool:
        """Whether ``token_id`` is the running child's server token (after a hub restart)."""
        child = self.child_spawner
        return bool(child is not None and child.owns_token(token_id))

    @property
    def ended_message(self) -> str:
        """Why the last session ended outside the hub (for the not-running page)."""
        if self.child_spawner is not None:
            return self.child_spawner.ended_message
        return str(self.child_state.get(saved.ENDED_MESSAGE, ""))

    # -- state -------------------------------------------------------------------
    def get_state(self) -> dict:
        """wrapspawner's state, plus the kept child state when no child exists."""
        state = super().get_state()
        if self.child_spawner is None and self.child_state:
            state["child_state"] = dict(self.child_state)
        return state

    def clear_state(self) -> None:
        """Forget the session but keep why it ended and the last accepted choice."""
        kept: dict = {}
        if self.child_spawner is not None:
            self.child_spawner.clear_state()
            kept = self.child_spawner.get_state()
        elif self.child_state:
            kept = self.child_state
        super().clear_state()
        self.child_state = saved.kept(kept)
