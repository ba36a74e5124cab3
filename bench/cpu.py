"""Where a burst's CPU time goes: the whole machine's, and each group of processes'.

The whole machine's busy time comes from ``/proc/stat``. Each process's own CPU time
(``/proc/PID/stat``: utime and stime) is read before and after; a process that started
in between counts from zero. A process that ended in between (``sudo`` and ``sbatch``
run by the hub, the jobs' shell scripts) is in no group: what the groups leave of the
whole is reported as "ended meanwhile, and the kernel". Counting waited-for children
instead would count a job that ended during the burst in full, with the CPU it spent
before.
"""

from __future__ import annotations

import os
import pwd
from collections import Counter
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")


def busy_cpu_seconds() -> float:
    """CPU-seconds this machine has spent busy since boot: user, nice, system, irq and
    softirq (not steal, time the hypervisor gave to others, nor guest, inside user)."""
    with open("/proc/stat") as handle:
        user, nice, system, _idle, _iowait, irq, softirq = map(int, handle.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / TICKS


def group_of(user: str, command: str) -> str:
    """The group a process counts in, from its owner and command line."""
    if user.startswith("demo"):
        if " -I - " in command:
            return "session launchers"
        if "singleuser" in command or "jupyter-lab" in command:
            return "session servers"
        return "other user processes"
    if "configurable-http-proxy" in command:
        return "proxy"
    if "bin/jupyterhub " in command or command.endswith("bin/jupyterhub"):
        return "hub"
    if command.split(" ", 1)[0].rsplit("/", 1)[-1].rstrip(":") in (
        "slurmctld",
        "slurmd",
        "slurmstepd",
        "slurmdbd",
        "munged",
        "mariadbd",
    ):
        return "Slurm (and its database)"
    if "-m bench." in command:
        return "bench clients"
    return "other"


def own_cpu(pid: int | str) -> tuple[float, int]:
    """(own CPU-seconds: utime + stime, start in clock ticks after boot) of ``pid``
    (/proc/PID/stat, fields 14, 15 and 22); OSError if it has ended."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS, int(fields[19])


@dataclass(frozen=True)
class Process:
    group: str
    started: int  # clock ticks after boot: tells a reused pid from the one before
    cpu_s: float


def processes() -> dict[int, Process]:
    """Every process now: its group, start time and own CPU time."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cpu, started = own_cpu(entry.name)
            with open(f"{entry.path}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
            user = pwd.getpwuid(entry.stat().st_uid).pw_name
        except (OSError, KeyError):
            continue  # ended meanwhile, or an owner without a name
        found[int(entry.name)] = Process(group_of(user, command), started, cpu)
    return found


def cpu_by_group(before: dict[int, Process], after: dict[int, Process]) -> dict[str, float]:
    """CPU-seconds each group spent between two :func:`processes` snapshots."""
    spent: Counter[str] = Counter()
    for pid, now in after.items():
        then = before.get(pid)
        spent[now.group] += now.cpu_s - (then.cpu_s if then and then.started == now.started else 0)
    return dict(spent.most_common())
