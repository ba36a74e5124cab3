"""Jinja filters for FactoryLab's roles: the site file read through the hub's own model.

The roles and the hub must agree on every limit, so the roles do not re-parse the
site file's walltimes and sizes themselves: they ask :mod:`spawners.site`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from spawners.session.site_checks import SITE_CHECKS
from spawners.site.loader import parse_site
from spawners.slurm.accounts import accounts_from_file


def _site(site_data: dict):
    """The validated site. Ansible hands over its own tagged str and list types, which
    pydantic does not take for plain ones: a JSON round trip makes them plain."""
    data = json.loads(json.dumps(site_data, default=str))
    return parse_site(data, "site file", SITE_CHECKS)


def _minutes(seconds: int) -> int:
    return -(-seconds // 60)


def slurm_limits(site_data: dict) -> dict:
    """What Slurm must enforce for a site file (a dict, as include_vars reads it).

    ``partitions``: each partition's MaxTime in minutes; ``qos``: one QOS per partition
    (its per-job ceilings) and one per group limit, each with ``tres`` (MaxTRESPerJob),
    ``minutes`` (MaxWall) and ``flags``; ``deny_qos``: per partition, the group QOS that
    may not use it.
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
    deny: dict[str, list[str]] = {name: [] for name in site.partitions}
    for group, limit in site.group_limits.items():
        allowed = [site.partitions[n] for n in limit.partitions or site.partitions]
        for name in site.partitions:
            if limit.partitions and name not in limit.partitions:
                deny[name].append(group)
        qos[group] = {
            "tres": _group_tres(limit, allowed),
            "minutes": _minutes(_tightest(limit.max_walltime, [p.max_walltime for p in allowed])),
            # OverPartQOS: the group's limits win over its partitions' QOS. Slurm cannot cap
            # a group per partition, so each limit is the group's, capped at the largest
            # of its partitions' (where one partition's cap is lower, the hub's is tighter)
            "flags": "DenyOnLimit,OverPartQOS",
        }
    return {
        "partitions": {n: _minutes(p.max_walltime) for n, p in site.partitions.items()},
        # Slurm keeps jobs of partitions that share cores off nodes that run jobs of
        # partitions that do not, so when one partition shares, all are written
        # OverSubscribe=FORCE:N (1: no sharing within the partition), and they mix.
        "oversubscribe": (
            {n: p.oversubscribe for n, p in site.partitions.items()}
            if any(p.oversubscribe > 1 for p in site.partitions.values())
            else {}
        ),
        "deny_qos": deny,
        "qos": qos,
    }


def _tightest(group_value: int | None, partition_values: list[int]) -> int:
    """The group's value, but never more than the largest of its partitions' values."""
    ceiling = max(partition_values)
    return ceiling if group_value is None else min(group_value, ceiling)


def _group_tres(limit, partitions: list) -> str:
    tres = [
        f"cpu={_tightest(limit.max_cpus, [p.max_cpus for p in partitions])}",
        f"mem={_tightest(limit.max_memory, [p.max_memory for p in partitions])}M",
    ]
    gpu_caps = [p.max_gpus for p in partitions if p.kind == "gpu"]
    tres.append(f"gres/gpu={_tightest(limit.max_gpus, gpu_caps) if gpu_caps else 0}")
    return ",".join(tres)


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


#: The demo cluster's GPU layout, node by node in turn: the nodes differ, so GPU types
#: and per-node limits are real (4 H100 on c01, 2 A100 on c02, 4 H100 on c03, …).
DEMO_GPU_LAYOUT = (("h100", 4), ("a100", 2))
DEMO_MAX_NODES = 8


def demo_nodes(count: object, network_prefix: str = "10.213.0") -> list[dict]:
    """The demo cluster's compute nodes for ``make up NODES=count``.

    Each is ``{name, address, gpu_type, gpu_count}``; the login node is ``.1`` of the
    same /24 and the nodes are ``.11`` on.

    >>> [(n["name"], n["address"], n["gpu_type"]) for n in demo_nodes("2")]
    [('c01', '10.213.0.11', 'h100'), ('c02', '10.213.0.12', 'a100')]
    >>> demo_nodes(0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: NODES=0: the demo cluster has 1 to 8 compute nodes. Run make up NODES=2 ...
    """
    text = str(count).strip()
    if not text.isdigit() or not 1 <= int(text) <= DEMO_MAX_NODES:
        raise ValueError(
            f"NODES={text or '(empty)'}: the demo cluster has 1 to {DEMO_MAX_NODES} compute "
            f"nodes. Run make up NODES=2 (the default) or another number from 1 to "
            f"{DEMO_MAX_NODES}."
        )
    nodes = []
    for index in range(1, int(text) + 1):
        gpu_type, gpu_count = DEMO_GPU_LAYOUT[(index - 1) % len(DEMO_GPU_LAYOUT)]
        nodes.append(
            {
                "name": f"c{index:02d}",
                "address": f"{network_prefix}.{10 + index}",
                "gpu_type": gpu_type,
                "gpu_count": gpu_count,
            }
        )
    return nodes


class FilterModule:
    """Registers the filters with Ansible."""

    def filters(self) -> dict:
        return {
            "slurm_limits": slurm_limits,
            "demo_associations": demo_associations,
            "demo_nodes": demo_nodes,
        }
