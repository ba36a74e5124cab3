"""The site file's sections about what runs in a session: Dask, idle culling, the time
limit's warnings and the starter notebooks."""

from __future__ import annotations

from pydantic import Field

from spawners.site.types import (
    MemoryMiB,
    SlurmName,
    Strict,
    WalltimeSeconds,
)


class DaskSettings(Strict):
    """Dask worker jobs that ``SLURMCluster()`` submits from a session, with no arguments."""

    enabled: bool = Field(
        True, description="Give every session a Dask configuration for SLURMCluster()."
    )
    partition: SlurmName | None = Field(
        None, description="The data-prep partition workers go to; default: defaults.partition."
    )
    cores: int = Field(1, ge=1, le=4096, description="CPUs per worker job.")
    memory: MemoryMiB = Field(2 * 1024, description="Memory per worker job, e.g. 2G.")
    processes: int = Field(1, ge=1, le=256, description="Dask worker processes per job.")
    walltime: WalltimeSeconds | None = Field(
        None,
        description="Longest worker job; default: the partition's max_walltime. A worker "
        "never outlives its session: Slurm cuts its limit to the session's end.",
    )
    min_walltime: WalltimeSeconds = Field(
        300, description="A worker is not started with less than this left in its session."
    )
    interface: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,32}$",
        description="Network interface workers reach the scheduler on (ib0, eth0); "
        "default: the address the compute node's host name resolves to.",
    )
    log_directory: str = Field(
        "~/.factorylab/dask-logs",
        pattern=r"^~?/[A-Za-z0-9_./+-]*$",
        description="Where worker jobs write their logs; ~ is the user's home.",
    )


class IdleSettings(Strict):
    """Idle sessions give their resources back. Idle means: no kernel executed anything.

    A kernel that is executing is never idle; an open browser tab does not count as
    activity. The first matching rule applies: ``by_profile``, then ``by_partition``,
    then ``default``. ``null`` there means never.
    """

    enabled: bool = True
    default: WalltimeSeconds | None = Field(4 * 3600, description="Idle limit, e.g. 04:00:00.")
    by_partition: dict[SlurmName, WalltimeSeconds | None] = Field(
        default_factory=dict, description="e.g. {gpu: '00:30:00'}"
    )
    by_profile: dict[SlurmName, WalltimeSeconds | None] = Field(default_factory=dict)
    check_every: int = Field(
        60, ge=5, le=3600, description="Seconds between the idle culler's checks."
    )
    report_every: int = Field(
        60, ge=5, le=3600, description="Seconds between a session's kernel-activity reports."
    )


class WalltimeSettings(Strict):
    """What users see of their session's time limit, and how far they may extend it."""

    warnings: list[WalltimeSeconds] = Field(
        default_factory=lambda: [15 * 60, 5 * 60],
        description="Warn this long before the end, e.g. ['00:15:00', '00:05:00'].",
    )
    extend_by: WalltimeSeconds = Field(
        3600,
        description="What one 'extend' adds. The total never passes the user's "
        "max_walltime for the partition (group_limits included).",
    )
    allow_extend: bool = True


class NotebookSettings(Strict):
    """Starter notebooks copied into each user's home at their first session."""

    enabled: bool = True
    source: str = Field(
        "/opt/factorylab/notebooks",
        pattern=r"^/[A-Za-z0-9_./+-]*$",
        description="Where the starter notebooks are on the compute nodes (read-only).",
    )
    directory: str = Field(
        "factorylab-notebooks",
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$",
        description="The folder in each user's home they are copied to. A file is copied "
        "only if the user never had it: edits and deletions are kept.",
    )
