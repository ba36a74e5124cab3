"""Slurm partitions as records: what ``sinfo --json`` says is there and free, per partition."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

# One GRES entry: name[:type]:count[(...)], e.g. "gpu:h100:4(S:0-1)" or "gpu:2".
_GRES = re.compile(r"(?P<name>[A-Za-z0-9_]+)(?::(?P<type>[A-Za-z0-9_.-]+?))?:(?P<count>\d+)")
_UNUSABLE_FLAGS = {"DRAIN", "DRAINED", "DRAINING", "NOT_RESPONDING", "MAINTENANCE", "FAIL"}
_USABLE_STATES = {"idle", "mixed", "allocated", "completing"}


def gpu_counts(gres: str | None) -> Counter[str]:
    """GPUs per type in a GRES string (untyped GPUs count under ``""``).

    >>> dict(gpu_counts("gpu:h100:4(S:0-1),gpu:a100:2,shard:8"))
    {'h100': 4, 'a100': 2}
    >>> dict(gpu_counts("gpu:h100:1(IDX:0)")), dict(gpu_counts("(null)"))
    ({'h100': 1}, {})
    """
    counts: Counter[str] = Counter()
    for entry in re.sub(r"\([^)]*\)", "", gres or "").split(","):
        match = _GRES.fullmatch(entry.strip())
        if match and match["name"] == "gpu":
            counts[match["type"] or ""] += int(match["count"])
    return counts


def _state(node: dict) -> tuple[str, set[str]]:
    """A ``sinfo --json`` node's state (lower case) and its flags (upper case)."""
    flags = {str(flag).upper() for flag in node.get("state_flags") or []}
    return str(node.get("state", "")).lower(), flags


def node_usable(node: dict) -> bool:
    """Whether new jobs can start on a node (not down, drained or failing)."""
    state, flags = _state(node)
    return state in _USABLE_STATES and not flags & _UNUSABLE_FLAGS


def node_silent(node: dict) -> bool:
    """Whether Slurm has lost touch with a node (not responding, or down).

    >>> node_silent({"state": "mixed", "state_flags": ["NOT_RESPONDING"]})
    True
    >>> node_silent({"state": "idle", "state_flags": ["DRAIN"]})
    False
    """
    state, flags = _state(node)
    return "NOT_RESPONDING" in flags or state == "down"


@dataclass(frozen=True)
class PartitionLoad:
    """Capacity and what is free now in one partition (usable nodes only)."""

    name: str
    nodes: int = 0
    usable_nodes: int = 0
    total_cpus: int = 0
    free_cpus: int = 0
    total_gpus: int = 0
    free_gpus: int = 0
    free_gpus_by_type: dict[str, int] = field(default_factory=dict)
    largest_node_cpus: int = 0
    largest_node_gpus: int = 0


def partition_loads(nodes: Iterable[dict]) -> dict[str, PartitionLoad]:
    """Sum ``sinfo --json`` nodes into per-partition capacity and free resources."""
    totals: dict[str, dict] = {}
    for node in nodes:
        usable = node_usable(node)
        cpus = int(node.get("cpus") or 0)
        free_cpus = max(cpus - int(node.get("alloc_cpus") or 0), 0)
        gpus = gpu_counts(node.get("gres"))
        used = gpu_counts(node.get("gres_used"))
        free_by_type = {kind: max(count - used.get(kind, 0), 0) for kind, count in gpus.items()}
        for name in node.get("partitions") or []:
            entry = totals.setdefault(
                name,
                {
                    "nodes": 0,
                    "usable": 0,
                    "cpus": 0,
                    "free_cpus": 0,
                    "gpus": 0,
                    "free_by_type": Counter(),
                    "largest_cpus": 0,
                    "largest_gpus": 0,
                },
            )
            entry["nodes"] += 1
            if not usable:
                continue
            entry["usable"] += 1
            entry["cpus"] += cpus
            entry["free_cpus"] += free_cpus
            entry["gpus"] += sum(gpus.values())
            entry["free_by_type"].update(free_by_type)
            entry["largest_cpus"] = max(entry["largest_cpus"], cpus)
            entry["largest_gpus"] = max(entry["largest_gpus"], sum(gpus.values()))
    return {
        name: PartitionLoad(
            name=name,
            nodes=entry["nodes"],
            usable_nodes=entry["usable"],
            total_cpus=entry["cpus"],
            free_cpus=entry["free_cpus"],
            total_gpus=entry["gpus"],
            free_gpus=sum(entry["free_by_type"].values()),
            free_gpus_by_type=dict(entry["free_by_type"]),
            largest_node_cpus=entry["largest_cpus"],
            largest_node_gpus=entry["largest_gpus"],
        )
        for name, entry in totals.items()
    }
