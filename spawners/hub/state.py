"""What a FactoryLab spawner keeps in JupyterHub's database, declared once.

:class:`SavedState` names every field of the spawner's saved state with its default;
the spawner's ``get_state``/``load_state`` and the profile wrapper read these names
from here, so no string key crosses a file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from jupyterhub import orm


@dataclass
class SavedState:
    """The spawner's saved state (batchspawner adds ``job_id`` and ``job_status``)."""

    job_log: str = ""
    submitted_at: int = 0
    api_token_id: int = 0
    ended_message: str = ""
    accepted_options: dict = field(default_factory=dict)
    kernel_activity: float = 0.0
    idle_limit: int | None = None
    serves_at: str = ""


SAVED_FIELDS = tuple(f.name for f in dataclasses.fields(SavedState))
ENDED_MESSAGE = "ended_message"
ACCEPTED_OPTIONS = "accepted_options"
KERNEL_ACTIVITY = "kernel_activity"
IDLE_LIMIT = "idle_limit"
SERVES_AT = "serves_at"
#: Survives ``clear_state``: why the last session ended, and the last accepted choice.
KEPT_STATE = (ENDED_MESSAGE, ACCEPTED_OPTIONS)
#: Saved only while a job exists (the culler reads them from the server's state).
JOB_ONLY_STATE = (KERNEL_ACTIVITY, IDLE_LIMIT, SERVES_AT)
assert set(KEPT_STATE + JOB_ONLY_STATE) <= set(SAVED_FIELDS)


def save(spawner: object, job_id: str) -> dict:
    """The saved-state fields of ``spawner`` worth writing (empty ones are left out)."""
    state = {}
    for name in SAVED_FIELDS:
        if name in JOB_ONLY_STATE:
            if job_id:
                state[name] = getattr(spawner, name)
        elif value := getattr(spawner, name):
            state[name] = value
    return state


def restore(spawner: object, state: dict) -> None:
    """Set ``spawner``'s saved-state fields from ``state`` (defaults where absent)."""
    defaults = SavedState()
    for name in SAVED_FIELDS:
        value = state.get(name)
        default = getattr(defaults, name)
        if value is None:
            value = default
        elif isinstance(default, int | float) and not isinstance(default, bool):
            value = type(default)(value)  # a database may hand back "12" or 12.0
        setattr(spawner, name, value)


def kept(state: dict) -> dict:
    """The part of a saved state that outlives the session."""
    return {key: value for key, value in state.items() if key in KEPT_STATE}


def server_token_id(db, token: str) -> int:
    """The database id of a server's API token (0 if there is none)."""
    if db is None or not token:
        return 0
    found = orm.APIToken.find(db, token)
    return found.id if found is not None else 0


def revoke_server_token(db, token_id: int, user: str) -> None:
    """Delete a server token the hub no longer holds in plain text (after a restart).

    JupyterHub deletes a server's token by its value when the server stops; after a hub
    restart it no longer knows the value, and the token would stay valid for ever.
    """
    if db is None:
        return
    found = db.query(orm.APIToken).filter_by(id=token_id).first()
    if found is not None and found.user is not None and found.user.name == user:
        db.delete(found)
        db.commit()
