"""The spawn failures users see, as JupyterHub's own :class:`SpawnException`."""

from __future__ import annotations

from jupyterhub.spawner import SpawnException


class SessionError(SpawnException):
    """A spawn that was refused or failed, with a sentence for the user.

    ``reason`` labels the failure in JupyterHub's spawn metrics. The error page shows
    ``message`` itself; the spawn page's progress stream reads ``jupyterhub_message``,
    which is the same sentence.
    """

    def __init__(self, message: str, *, reason: str, status_code: int = 500):
        super().__init__(message, reason=reason, status_code=status_code)

    @property
    def jupyterhub_message(self) -> str:
        """The sentence, as JupyterHub's progress stream and error pages read it."""
        return self.message


class LinkPrefillsForm(Exception):
    """A spawn link chose settings: the form shows them and waits for the user's Start.

    Not a :class:`SpawnException`: nothing failed, and the page answers 200. JupyterHub
    renders the form when ``options_from_query`` raises, with this message above it.
    """

    jupyterhub_message = (
        "The link you followed chose the settings below. Check them and press Start."
    )

    def __str__(self) -> str:
        return self.jupyterhub_message
