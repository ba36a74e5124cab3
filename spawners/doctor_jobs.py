"""The doctor's checks that submit jobs: a probe per node and partition, and Dask's
reach from node to node (see :mod:`spawners.probes` and :mod:`spawners.dask_probe`)."""

from __future__ import annotations

import os
import pwd
import secrets
import socket
from collections.abc import Iterator

from spawners import dask_probe, probes
from spawners.checks import Check, Ran, Runner, first_line
from spawners.probes import Probe
from spawners.site import Site


class JobChecks:
    """Mixed into :class:`spawners.doctor.Doctor`, which sets these attributes."""

    site: Site
    runner: Runner
    bin: str
    as_hub: list[str]
    member: str

    def _as_member(self, verb: str, *args: str, stdin: str = "") -> Ran:
        """Run a Slurm command as the sample user, through the hub's own sudo rule."""
        sudo = [*self.as_hub, "sudo", "-n", "-u", self.member, f"{self.bin}/{verb}"]
        return self.runner([*sudo, *args], stdin=stdin)

    def _jobs(self, scripts: list[tuple[Probe, str]], fields: dict, timeout: float):
        """Submit each ``(probe, script)``, gather the reports (by nonce), cancel the jobs.

        Yields a FAIL for each refused submission, then ``(submitted, reports)``."""
        with socket.socket() as listener:
            try:
                listener.bind((self.site.hub.hub_connect_ip, 0))
            except OSError as exc:
                yield Check(
                    "probe jobs",
                    False,
                    f"cannot listen on hub.hub_connect_ip {self.site.hub.hub_connect_ip} ({exc}); "
                    "run the doctor on the hub host",
                )
                return
            listener.listen(len(scripts) + 4)
            jobs, submitted = [], []
            try:
                for probe, script in scripts:
                    done = self._as_member("sbatch", "--parsable", stdin=script(listener))
                    if done.returncode != 0:
                        why = first_line(done.stderr)
                        yield Check(
                            probe.label, False, f"sbatch as {self.member} refused it ({why})"
                        )
                        continue
                    jobs.append(done.stdout.strip().split(";")[0])
                    submitted.append(probe)
                yield submitted, probes.collect(listener, submitted, timeout, fields)
            finally:
                if jobs:
                    self._as_member("scancel", *jobs)

    def probe_jobs(self, nodes: list[dict]) -> Iterator[Check]:
        """A probe job per node and partition, as a sample user (see :mod:`spawners.probes`)."""
        home = pwd.getpwnam(self.member).pw_dir
        try:
            home_inode: int | None = os.stat(home).st_ino
        except OSError:
            home_inode = None
        hub = self.site.hub
        alt_names = [*hub.internal_ssl_alt_names] if hub.internal_ssl else None
        scripts = [
            (probe, lambda ear, p=probe: probes.job_script(self.site, p, ear.getsockname()[:2]))
            for probe in probes.plan(list(self.site.partitions), nodes)
        ]
        for item in self._jobs(scripts, probes.REPORT_FIELDS, probes.REPORT_TIMEOUT):
            if isinstance(item, Check):
                yield item
                continue
            submitted, reports = item
            for probe in submitted:
                lines = probes.report_lines(
                    probe, reports.get(probe.nonce), home, home_inode, alt_names
                )
                yield from (Check(*line) for line in lines)

    def dask_jobs(self, nodes: list[dict]) -> Iterator[Check]:
        """A Dask worker on one node joins a scheduler on another (:mod:`spawners.dask_probe`)."""
        picked = dask_probe.pick_nodes(list(self.site.partitions), nodes)
        if picked is None:
            yield Check("dask", True, "no partition has two nodes: nothing to reach across")
            return
        partition, first, second = picked
        scheduler = Probe(partition, first, secrets.token_hex(16))
        worker = Probe(partition, second, scheduler.nonce)
        share = f"{pwd.getpwnam(self.member).pw_dir}/.factorylab/doctor-{scheduler.nonce[:16]}"

        def script(probe: Probe, role: str):
            return lambda ear: dask_probe.job_script(
                self.site, probe, role, share, ear.getsockname()[:2]
            )

        scripts = [(scheduler, script(scheduler, "scheduler")), (worker, script(worker, "worker"))]
        for item in self._jobs(scripts, dask_probe.REPORT_FIELDS, probes.REPORT_TIMEOUT):
            if isinstance(item, Check):
                yield item
                continue
            _, reports = item
            yield Check(*dask_probe.report_line(first, second, reports.get(scheduler.nonce)))
