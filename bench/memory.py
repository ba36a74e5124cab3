"""Memory of an idle session: the PSS of all its processes, no kernel.

Each run starts one session each way, as the cold-spawn benchmark does (the floor: a bare
``jupyter-lab`` from the base env by ``sbatch``; FactoryLab's "Start"; plain batchspawner
1.3), waits until each answers, lets them sit idle for :data:`SETTLE` s, and then sums
the proportional set size (``/proc/PID/smaps_rollup``) of every process of each session's
job (those whose environment holds its ``SLURM_JOB_ID``): the launcher and the server
for FactoryLab, the server for the floor. Slurm's own ``slurmstepd`` (root's, the same
for every job) is not counted. The floor and FactoryLab run from the same env, so PSS
shares its libraries' pages between them, as on a node packing many Labs; batchspawner
runs from its own env, so its figure carries its libraries whole.

Writes ``bench/results/memory.json``. Run as root after ``make up`` (``make bench``).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import FLOOR_ENV, RESULTS, BatchspawnerHub, run_floor, run_hub, write_result
from tests.support.hub import ADMIN_TOKEN_FILE, Hub

RUNS = int(os.environ.get("BENCH_MEMORY_RUNS", "3"))
SETTLE = 10.0
TARGET = 1.15
USERS = {"floor": "demo26", "factorylab": "demo27", "batchspawner": "demo28"}


def job_pids(job: str) -> list[int]:
    """The processes of Slurm job ``job``: those whose environment names it."""
    marker = f"SLURM_JOB_ID={job}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environment = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue  # ended meanwhile, or a kernel thread
            if marker in environment:
                pids.append(int(entry.name))
    return pids


def pss_mib(pid: int) -> float:
    """Proportional set size of ``pid`` in MiB (/proc/PID/smaps_rollup); OSError if it
    has ended."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss in /proc/{pid}/smaps_rollup")


def pss_of_job(job: str) -> tuple[float, dict[str, float]]:
    """(PSS in MiB, PSS in MiB by command) of every process of ``job``."""
    by_command: dict[str, float] = {}
    for pid in job_pids(job):
        try:
            pss = pss_mib(pid)
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        command = " ".join(Path(a.decode()).name for a in argv[:3] if a)
        by_command[command] = by_command.get(command, 0) + pss
    return round(sum(by_command.values()), 1), {k: round(v, 1) for k, v in by_command.items()}


def only_job_of(user: str) -> str:
    """The one job ``user`` has (each benchmarked user runs exactly one)."""
    jobs = subprocess.run(
        ["squeue", "--noheader", f"--user={user}", "--states=RUNNING", "--format=%i"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    if len(jobs) != 1:
        raise RuntimeError(f"{user} should have one job, has {jobs or 'none'}")
    return jobs[0]


def one_run(factorylab: Hub, batchspawner: Hub) -> dict[str, dict]:
    """Start one idle session each way, measure all three together, stop them."""
    _, floor_job = run_floor(USERS["floor"], FLOOR_ENV, keep=True)
    try:
        run_hub(factorylab, USERS["factorylab"], keep=True)
        run_hub(batchspawner, USERS["batchspawner"], keep=True)
        time.sleep(SETTLE)
        jobs = {"floor": floor_job}
        jobs |= {name: only_job_of(USERS[name]) for name in ("factorylab", "batchspawner")}
        measured = {}
        for name, job in jobs.items():
            pss, by_command = pss_of_job(job)
            measured[name] = {"job": job, "pss_mib": pss, "by_command": by_command}
        return measured
    finally:
        subprocess.run(["scancel", floor_job], check=False)
        factorylab.stop(USERS["factorylab"])
        batchspawner.stop(USERS["batchspawner"])


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("make bench runs as root, after make up")
    factorylab = Hub(ADMIN_TOKEN_FILE.read_text().strip())
    runs: list[dict[str, dict]] = []
    with BatchspawnerHub() as batchspawner:
        for i in range(RUNS):
            runs.append(one_run(factorylab, batchspawner))
            print(
                f"run {i + 1}/{RUNS}: "
                + ", ".join(
                    f"{name} {m['pss_mib']:.0f} MiB ({m['by_command']})"
                    for name, m in runs[-1].items()
                ),
                flush=True,
            )
            time.sleep(5)  # the stopped servers exit before the next run
    medians = {name: statistics.median(run[name]["pss_mib"] for run in runs) for name in USERS}
    ratios = {
        "factorylab_vs_floor": round(medians["factorylab"] / medians["floor"], 3),
        "batchspawner_vs_floor": round(medians["batchspawner"] / medians["floor"], 3),
    }
    report = {
        "benchmark": "memory",
        "what": f"PSS (MiB) of all processes of an idle session, {SETTLE:.0f} s after it "
        "answered, no kernel",
        "runs": runs,
        "median_pss_mib": medians,
        "target": {"factorylab_vs_floor": TARGET},
        "ratios": ratios,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_result("memory", report)
    for name, value in medians.items():
        print(f"{name:<14}{value:>8.1f} MiB {value / medians['floor']:>6.2f} x floor")
    print(f"target: FactoryLab ≤ {TARGET} x floor; written to {RESULTS / 'memory.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
