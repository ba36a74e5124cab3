"""Slurm reservations: parsed from ``scontrol -o show reservation``, filtered per user.

Slurm 22.05's scontrol has no ``--json``; its one-line ``Key=Value`` output is stable
and is what this module reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

_PAIR = re.compile(r"(\w+)=(\S*)")
_NULL = {"", "(null)", "N/A"}


def _names(value: str) -> tuple[str, ...]:
    return () if value in _NULL else tuple(name for name in value.split(",") if name)


@dataclass(frozen=True)
class Reservation:
    """One reservation as far as a spawn form cares."""

    name: str
    state: str
    start: datetime | None
    end: datetime | None
    partition: str | None
    users: tuple[str, ...]
    accounts: tuple[str, ...]
    groups: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """Whether jobs can run in it now."""
        return self.state == "ACTIVE"

    def usable_by(self, user: str, accounts: Iterable[str], groups: Iterable[str] = ()) -> bool:
        """Whether ``user`` (charging one of ``accounts``) may submit into it.

        As in Slurm: a leading ``-`` excludes instead of admitting, and when users and
        accounts are both listed a job must match both.
        """
        checks = [
            _admits(self.users, {user}),
            _admits(self.accounts, set(accounts)),
            _admits(self.groups, set(groups)),
        ]
        answered = [check for check in checks if check is not None]
        return bool(answered) and all(answered)


def _admits(entries: tuple[str, ...], names: set[str]) -> bool | None:
    """None when the list is empty (no constraint); else whether ``names`` pass it."""
    if not entries:
        return None
    admitted = {entry for entry in entries if not entry.startswith("-")}
    excluded = {entry[1:] for entry in entries if entry.startswith("-")}
    if admitted:
        return bool(admitted & names)
    return not excluded & names


def _time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def parse_reservations(text: str) -> list[Reservation]:
    """Parse ``scontrol -o show reservation`` output.

    >>> [r.name for r in parse_reservations("No reservations in the system")]
    []
    >>> r = parse_reservations("ReservationName=course StartTime=2026-11-24T06:00:00 "
    ...     "EndTime=2026-11-24T08:00:00 PartitionName=gpu Users=demo05,-demo06 "
    ...     "Accounts=(null) State=ACTIVE")[0]
    >>> (r.name, r.partition, r.users, r.active, r.usable_by("demo05", []))
    ('course', 'gpu', ('demo05', '-demo06'), True, True)
    """
    reservations = []
    for line in text.splitlines():
        fields = dict(_PAIR.findall(line))
        if "ReservationName" not in fields:
            continue
        reservations.append(
            Reservation(
                name=fields["ReservationName"],
                state=fields.get("State", ""),
                start=_time(fields.get("StartTime", "")),
                end=_time(fields.get("EndTime", "")),
                partition=(
                    None if fields.get("PartitionName", "") in _NULL else fields["PartitionName"]
                ),
                users=_names(fields.get("Users", "")),
                accounts=_names(fields.get("Accounts", "")),
                groups=_names(fields.get("Groups", "")),
            )
        )
    return reservations
