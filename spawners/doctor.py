"""``factorylab doctor``: an admin's pre-flight of a site, one line a check.

Each check says ``OK`` with what it saw, or ``FAIL`` with the fix. It compares the site
file with the cluster it runs on: the Slurm commands and version, the controller,
munge, the partitions, GPU types and counts, memory defaults, and the hub's sudo rules.
Any FAIL makes the exit status non-zero.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
from collections import Counter
from collections.abc import Iterator

from spawners.checks import Check, Ran, Runner, first_line, run
from spawners.doctor_jobs import JobChecks
from spawners.site import Site
from spawners.slurm.partitions import gpu_counts

#: Oldest Slurm FactoryLab reads (``squeue --json`` with openapi v0.0.38).
MIN_SLURM = (22, 5)
#: Commands FactoryLab runs, in ``slurm.bin_dir``.
SLURM_COMMANDS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")


def _types(gpus: Counter[str]) -> str:
    return ", ".join(sorted(kind or "untyped" for kind in gpus)) or "no GPUs"


class Doctor(JobChecks):
    """The checks of one site against the cluster, through ``runner`` (faked in tests)."""

    def __init__(
        self,
        site: Site,
        hub_user: str = "factorylab",
        runner: Runner = run,
        probe: bool = True,
        dask: bool = False,
    ):
        self.site = site
        self.hub_user = hub_user
        self.runner = runner
        self.probe = probe
        self.dask = dask
        self.member = ""  # the sample user, once the sudo check has found one
        self.bin = site.slurm.bin_dir.rstrip("/")
        self.as_hub = [] if os.geteuid() != 0 else ["runuser", "-u", hub_user, "--"]

    def slurm(self, verb: str, *args: str) -> Ran:
        """Run a Slurm command from ``slurm.bin_dir``."""
        return self.runner([f"{self.bin}/{verb}", *args])

    def checks(self) -> Iterator[Check]:
        """Every check, in the order an admin would fix them."""
        yield self.commands()
        yield self.version()
        controller = self.controller()
        yield controller
        yield self.munge()
        if not controller.ok:
            return  # the rest ask the controller
        nodes = self.nodes()
        if isinstance(nodes, Check):
            yield nodes
            return
        yield from self.partitions(nodes)
        yield self.memory_defaults()
        yield self.node_silence()
        sudo = list(self.sudo_rules())
        yield from sudo
        if self.probe and all(check.ok for check in sudo):
            self.member = grp.getgrnam(self.site.users.group).gr_mem[0]
            yield from self.probe_jobs(nodes)
            if self.dask:
                yield from self.dask_jobs(nodes)

    def commands(self) -> Check:
        """The Slurm commands FactoryLab runs are in ``slurm.bin_dir``."""
        missing = [c for c in SLURM_COMMANDS if not os.access(f"{self.bin}/{c}", os.X_OK)]
        if missing:
            return Check(
                "slurm commands",
                False,
                f"{', '.join(missing)} missing in {self.bin}; install Slurm's client commands "
                "or set slurm.bin_dir in the site file",
            )
        return Check("slurm commands", True, f"{', '.join(SLURM_COMMANDS)} in {self.bin}")

    def version(self) -> Check:
        """Slurm is new enough for ``squeue --json``."""
        out = self.slurm("sinfo", "--version")
        found = re.search(r"(\d+)\.(\d+)\.(\d+)", out.stdout)
        if out.returncode != 0 or not found:
            return Check(
                "slurm version",
                False,
                f"`sinfo --version` said {first_line(out.stderr or out.stdout)!r}; "
                "check the Slurm install",
            )
        version = tuple(int(part) for part in found.groups())
        if version[:2] < MIN_SLURM:
            return Check(
                "slurm version",
                False,
                f"{found.group(0)} is older than 22.05, which FactoryLab needs (squeue --json); "
                "upgrade Slurm",
            )
        return Check("slurm version", True, found.group(0))

    def controller(self) -> Check:
        """slurmctld answers ``scontrol ping``."""
        out = self.slurm("scontrol", "ping")
        if out.returncode == 0 and " is UP" in out.stdout:
            return Check("slurmctld", True, first_line(out.stdout))
        return Check(
            "slurmctld",
            False,
            f"not answering ({first_line(out.stdout or out.stderr)}); start slurmctld and "
            "check SlurmctldHost in slurm.conf",
        )

    def munge(self) -> Check:
        """A munge credential made here decodes here (the key and munged work)."""
        made = self.runner(["munge", "-n"])
        if made.returncode != 0:
            return Check(
                "munge", False, f"munge -n failed ({first_line(made.stderr)}); start munged"
            )
        decoded = self.runner(["unmunge"], stdin=made.stdout)
        if decoded.returncode == 0 and re.search(r"^STATUS:\s+Success", decoded.stdout, re.M):
            return Check("munge", True, "round trip: Success")
        return Check(
            "munge",
            False,
            f"round trip failed ({first_line(decoded.stdout or decoded.stderr)}); check that "
            "munged runs and every host has the same /etc/munge/munge.key",
        )

    def nodes(self) -> list[dict] | Check:
        """Every node, from ``sinfo --json``."""
        out = self.slurm("sinfo", "--json")
        try:
            return list(json.loads(out.stdout).get("nodes", []))
        except (json.JSONDecodeError, AttributeError):
            return Check(
                "nodes", False, f"`sinfo --json` gave no node list ({first_line(out.stderr)})"
            )

    def partitions(self, nodes: list[dict]) -> Iterator[Check]:
        """Each partition of the site file exists, with the GPU types and counts it offers."""
        gpus: dict[str, Counter[str]] = {}  # partition -> largest node's GPUs per type
        for node in nodes:
            counts = gpu_counts(node.get("gres"))
            for name in node.get("partitions") or []:
                largest = gpus.setdefault(name, Counter())
                for kind, count in counts.items():
                    largest[kind] = max(largest[kind], count)
        for name, offered in self.site.partitions.items():
            check = f"partition {name}"
            if name not in gpus:
                known = ", ".join(sorted(gpus)) or "none"
                yield Check(
                    check,
                    False,
                    f"Slurm has no partition {name!r} (it has: {known}); add it to slurm.conf or "
                    "remove it from the site file's partitions",
                )
                continue
            if offered.kind != "gpu":
                yield Check(check, True, "exists")
                continue
            have = gpus[name]
            missing = [kind for kind in offered.gpu_types if have.get(kind, 0) == 0]
            if missing:
                yield Check(
                    check,
                    False,
                    f"no node has GPU type {', '.join(missing)} (Slurm's: {_types(have)}); "
                    "fix gpu_types in the site file or Gres in slurm.conf",
                )
                continue
            most = max(have.values(), default=0)
            if offered.max_gpus > most:
                yield Check(
                    check,
                    False,
                    f"max_gpus {offered.max_gpus} is more than its largest node has ({most}); "
                    "lower max_gpus in the site file",
                )
                continue
            yield Check(check, True, f"GPUs per node up to {most} ({dict(sorted(have.items()))})")

    def memory_defaults(self) -> Check:
        """A job that asks for no memory does not take a whole node (DefMemPer*)."""
        config = self.slurm("scontrol", "show", "config").stdout
        parts = self.slurm("scontrol", "-o", "show", "partition").stdout
        overall = re.search(r"^DefMemPer(CPU|Node|GPU)\s*=\s*(\d+)", config, re.MULTILINE)
        if overall and overall.group(2) != "0":
            return Check("memory defaults", True, f"DefMemPer{overall.group(1)}={overall.group(2)}")
        lacking = [
            line.split()[0].removeprefix("PartitionName=")
            for line in parts.splitlines()
            if line.strip() and not re.search(r"DefMemPer(CPU|Node|GPU)=[1-9]", line)
        ]
        if lacking:
            return Check(
                "memory defaults",
                False,
                f"no DefMemPerCPU or DefMemPerNode for {', '.join(lacking)}: a job that asks for "
                "no memory takes a whole node; set DefMemPerCPU in slurm.conf",
            )
        return Check("memory defaults", True, "set on every partition")

    def node_silence(self) -> Check:
        """The hub ends no session sooner than Slurm would (slurm.node_silence_limit)."""
        config = self.slurm("scontrol", "show", "config").stdout
        found = re.search(r"^SlurmdTimeout\s*=\s*(\d+)", config, re.MULTILINE)
        timeout = int(found.group(1)) if found else 300
        limit = self.site.slurm.node_silence_limit
        if not limit:
            return Check(
                "node failures",
                True,
                f"reported at Slurm's verdict; set slurm.node_silence_limit to {timeout} "
                "(SlurmdTimeout) to report them sooner",
            )
        if limit < timeout:
            return Check(
                "node failures",
                False,
                f"slurm.node_silence_limit ({limit:g} s) is shorter than SlurmdTimeout "
                f"({timeout} s): the hub would end sessions on nodes Slurm still keeps; set it "
                f"to {timeout}, or 0",
            )
        return Check(
            "node failures",
            True,
            f"a session silent for {limit:g} s on a node Slurm no longer hears from is lost "
            f"(SlurmdTimeout {timeout} s)",
        )

    def sudo_rules(self) -> Iterator[Check]:
        """The hub may submit as a member of ``users.group``, and as nobody else."""
        group = self.site.users.group
        try:
            members = grp.getgrnam(group).gr_mem
            pwd.getpwnam(self.hub_user)
        except KeyError as exc:
            yield Check(
                "sudo rules",
                False,
                f"no Unix account or group {exc}; run make up or fix users.group",
            )
            return
        if not members:
            yield Check("sudo rules", False, f"group {group} has no members to test with")
            return
        partition = self.site.defaults.partition
        test = ["sbatch", "--test-only", f"--partition={partition}", "--wrap=true"]
        as_hub = self.as_hub
        member = self.runner(
            [*as_hub, "sudo", "-n", "-u", members[0], f"{self.bin}/{test[0]}", *test[1:]]
        )
        if member.returncode == 0 or "sbatch: Job" in member.stderr:
            yield Check(
                "sudo rules",
                True,
                f"{self.hub_user} may submit as {members[0]} (a member of {group})",
            )
        else:
            yield Check(
                "sudo rules",
                False,
                f"{self.hub_user} cannot submit as {members[0]} ({first_line(member.stderr)}); "
                "check /etc/sudoers.d/factorylab",
            )
        for other in ("root", "nobody"):  # outside the group: sudo must refuse before sbatch runs
            listed = self.runner([*as_hub, "sudo", "-n", "-l", "-u", other, f"{self.bin}/sbatch"])
            if listed.returncode == 0:
                yield Check(
                    "sudo refusal",
                    False,
                    f"{self.hub_user} may run sbatch as {other}, who is not in {group}; allow "
                    f"only %{group} in /etc/sudoers.d/factorylab",
                )
                return
        yield Check("sudo refusal", True, f"{self.hub_user} may not submit as root or nobody")


def diagnose(
    site: Site,
    hub_user: str = "factorylab",
    runner: Runner = run,
    probe: bool = True,
    dask: bool = False,
) -> tuple[list[str], int]:
    """The report's lines, and the exit status: 1 if any check failed."""
    results = list(Doctor(site, hub_user, runner, probe, dask).checks())
    return [check.line() for check in results], int(not all(check.ok for check in results))
