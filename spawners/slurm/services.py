"""The hub-wide Slurm services, built in one place: one of each per site's Slurm.

Every spawner, page and endpoint of one hub shares them, so that the whole hub costs
the scheduler one ``squeue`` per snapshot interval, one ``sinfo`` per availability
interval and one ``sacctmgr`` per user and cache period, however many users there are.
"""

from __future__ import annotations

from spawners.site.model import Site
from spawners.slurm.accounts import AccountDirectory
from spawners.slurm.client import SlurmClient
from spawners.slurm.cluster import ClusterStateCache
from spawners.slurm.queue import JobMonitor

_monitors: dict[tuple[str, str], JobMonitor] = {}
_caches: dict[str, ClusterStateCache] = {}
_directories: dict[str, AccountDirectory] = {}


def shared_monitor(site: Site) -> JobMonitor:
    """The hub-wide job monitor for this site's Slurm settings."""
    key = (site.slurm.bin_dir, site.slurm.job_name)
    if key not in _monitors:
        _monitors[key] = JobMonitor(
            SlurmClient.for_site(site),
            site.slurm.job_name,
            active_interval=site.slurm.poll_interval_active,
            steady_interval=site.slurm.poll_interval_steady,
        )
    _monitors[key].orphan_grace = site.slurm.orphan_grace
    return _monitors[key]


def shared_cluster_state(site: Site) -> ClusterStateCache:
    """The hub-wide cache for this site's Slurm (one per ``bin_dir``)."""
    key = site.slurm.bin_dir
    if key not in _caches:
        _caches[key] = ClusterStateCache(
            SlurmClient.for_site(site),
            site.slurm.availability_interval,
            with_reservations=site.reservations.source == "slurm",
        )
    cache = _caches[key]
    cache.interval = site.slurm.availability_interval
    cache.with_reservations = site.reservations.source == "slurm"
    return cache


def shared_account_directory(site: Site) -> AccountDirectory:
    """The hub-wide account lookup for this site (its cache is shared by all users)."""
    key = site.slurm.bin_dir
    directory = _directories.get(key)
    if directory is None or directory.settings != site.accounts:
        directory = AccountDirectory(SlurmClient.for_site(site), site.accounts)
        _directories[key] = directory
    return directory
