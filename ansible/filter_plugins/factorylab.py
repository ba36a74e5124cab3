"""Jinja filters for FactoryLab's roles: the site file read through the hub's own model.

The roles and the hub must agree on every limit, so the roles do not re-parse the
site file's walltimes and sizes themselves: they ask :mod:`spawners.site`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from spawners.accounts import accounts_from_file
from spawners.site import parse_site


def _site(site_data: dict):
    """The validated site. Ansible hands over its own tagged str and list types, which
    pydantic does not take for plain ones: a JSON round trip makes them plain."""
    return parse_site(json.loads(json.dumps(site_data, default=str)), "site file")


def _minutes(seconds: int) -> int:
    return -(-seconds // 60)


def slurm_limits(site_data: dict) -> dict:
    """What Slurm must enforce for a site file (a dict, as include_vars reads it).

    ``partitions``: each partition's MaxTime in minutes; ``qos``: one QOS per partition
    (its per-job ceilings) and one per group limit, each with ``tres`` (MaxTRESPerJob),
    ``minutes`` (MaxWall) and ``flags``; ``max_minutes``: the longest session of any partition.
    """
    site = _site(site_data)
    qos: dict[str, dict] = {}
    for name, part in site.partitions.items():
        tres = [f"cpu={part.max_cpus}", f"mem={part.max_memory}M"]
        if part.kind == "gpu":
            tres.append(f"gres/gpu={part.max_gpus}")
        qos[f"part-{name}"] = {
            "tres": ",".join(tres),
            "minutes": _minutes(part.max_walltime),
            "flags": "DenyOnLimit",
        }
    for group, limit in site.group_limits.items():
        tres = []
        if limit.max_cpus is not None:
            tres.append(f"cpu={limit.max_cpus}")
        if limit.max_memory is not None:
            tres.append(f"mem={limit.max_memory}M")
        if limit.max_gpus is not None:
            tres.append(f"gres/gpu={limit.max_gpus}")
        longest = max(p.max_walltime for p in site.partitions.values())
        qos[group] = {
            "tres": ",".join(tres) or "cpu=-1",
            "minutes": _minutes(limit.max_walltime or longest),
            # a group's limits are tighter than its partitions': they must win
            "flags": "DenyOnLimit,OverPartQOS",
        }
    return {
        "partitions": {n: _minutes(p.max_walltime) for n, p in site.partitions.items()},
        "qos": qos,
        "max_minutes": max(_minutes(p.max_walltime) for p in site.partitions.values()),
    }


def demo_associations(site_data: dict) -> list[dict]:
    """Each demo user's Slurm associations: ``{user, accounts, qos}``.

    Accounts come from the site file's ``accounts`` lists (so the hub, reading them back
    from sacctmgr, offers the same), the QOS from the first group limit the user falls
    under (``normal`` when none): a user with only that QOS cannot pick a looser one.
    """
    site = _site(site_data)
    rows = []
    for user in site.demo.usernames() if site.demo.enabled else []:
        extra = {group for group, members in site.demo.groups.items() if user in members}
        groups = {site.users.group} | extra
        limited = sorted(groups & set(site.group_limits))
        accounts = accounts_from_file(site.accounts, user, groups)
        if accounts:
            rows.append({"user": user, "accounts": accounts, "qos": (limited or ["normal"])[0]})
    return rows


class FilterModule:
    """Registers the filters with Ansible."""

    def filters(self) -> dict:
        return {"slurm_limits": slurm_limits, "demo_associations": demo_associations}
