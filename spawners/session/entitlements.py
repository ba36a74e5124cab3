"""What one user may ask for: partitions and their limits, profiles, accounts and
reservations. Built from the site file, the user's Unix groups and Slurm.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from spawners.site.model import Site


@dataclass(frozen=True)
class Limits:
    """The most one user may request in one partition."""

    max_gpus: int
    max_cpus: int
    max_memory_mib: int
    max_walltime_seconds: int


@dataclass(frozen=True)
class Entitlements:
    """One user's allowed choices. Every spawn is checked against these."""

    user: str
    groups: frozenset[str] = frozenset()
    partitions: Mapping[str, Limits] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    reservations: tuple[str, ...] = ()


def _cap(site_max: int, rule_caps: list[int | None]) -> int:
    """``site_max``, lowered to the loosest rule's cap (a rule without a cap lowers nothing)."""
    if not rule_caps or any(cap is None for cap in rule_caps):
        return site_max
    return min(site_max, max(cap for cap in rule_caps if cap is not None))


def partition_limits(site: Site, groups: Iterable[str]) -> dict[str, Limits]:
    """Partitions the user may use, with limits tightened by ``group_limits``.

    A user in none of the limited groups gets the partitions' own limits. A user in
    several gets the most generous of their groups' rules, never more than the
    partition allows.
    """
    rules = [site.group_limits[name] for name in sorted(set(groups) & set(site.group_limits))]
    limits = {}
    for name, partition in site.partitions.items():
        applicable = [rule for rule in rules if not rule.partitions or name in rule.partitions]
        if rules and not applicable:
            continue  # every rule that binds this user leaves this partition out
        limits[name] = Limits(
            max_gpus=_cap(partition.max_gpus, [rule.max_gpus for rule in applicable]),
            max_cpus=_cap(partition.max_cpus, [rule.max_cpus for rule in applicable]),
            max_memory_mib=_cap(partition.max_memory, [rule.max_memory for rule in applicable]),
            max_walltime_seconds=_cap(
                partition.max_walltime, [rule.max_walltime for rule in applicable]
            ),
        )
    return limits


def unrestricted(site: Site) -> Entitlements:
    """The site's own limits, no account or reservation: used to check profiles."""
    return Entitlements(
        user="", partitions=partition_limits(site, ()), profiles=tuple(site.profiles)
    )


def unix_groups(user: str) -> frozenset[str]:
    """Names of the Unix groups ``user`` belongs to (primary and supplementary)."""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return frozenset()
    names = set()
    for gid in os.getgrouplist(user, account.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return frozenset(names)
