"""Which Slurm accounts a user may charge: from sacctmgr, or from the site file."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from spawners.site.cluster_sections import AccountSettings
from spawners.slurm.client import SlurmClient, SlurmError

log = logging.getLogger(__name__)


def names_from_file(
    by_user: Mapping[str, list[str]],
    by_group: Mapping[str, list[str]],
    user: str,
    groups: Iterable[str],
) -> list[str]:
    """Names a site-file list grants ``user`` directly or through a group, without repeats."""
    names = list(by_user.get(user, []))
    for group in sorted(groups):
        names += by_group.get(group, [])
    return list(dict.fromkeys(names))


def accounts_from_file(settings: AccountSettings, user: str, groups: Iterable[str]) -> list[str]:
    """The accounts the site file grants ``user`` directly or through a group."""
    return names_from_file(settings.by_user, settings.by_group, user, groups)


class AccountDirectory:
    """Answers "which accounts may this user charge?", cached per user.

    With ``source: auto`` it asks sacctmgr, and falls back to the site file's lists when
    Slurm has no accounting database (sacctmgr fails); it then does not ask again for
    ``cache_seconds``.
    """

    def __init__(self, client: SlurmClient, settings: AccountSettings):
        self.client = client
        self.settings = settings
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._slurm_failed_at: float | None = None

    async def accounts_for(self, user: str, groups: Iterable[str]) -> list[str]:
        """The accounts ``user`` may use, in a stable order; ``[]`` means none to choose."""
        groups = list(groups)
        now = time.monotonic()
        cached = self._cache.get(user)
        if cached and now - cached[0] < self.settings.cache_seconds:
            return cached[1]
        names = await self._lookup(user, groups, now)
        self._cache[user] = (now, names)
        return names

    async def _lookup(self, user: str, groups: list[str], now: float) -> list[str]:
        source = self.settings.source
        if source == "file":
            return accounts_from_file(self.settings, user, groups)
        recently_failed = (
            self._slurm_failed_at is not None
            and now - self._slurm_failed_at < self.settings.cache_seconds
        )
        if source == "auto" and recently_failed:
            return accounts_from_file(self.settings, user, groups)
        try:
            names = await self.client.associations(user)
        except SlurmError as exc:
            if source == "slurm":
                raise
            if self._slurm_failed_at is None:
                log.info("sacctmgr is not usable (%s); accounts come from the site file", exc)
            self._slurm_failed_at = now
            return accounts_from_file(self.settings, user, groups)
        self._slurm_failed_at = None
        return names
