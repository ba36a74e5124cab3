"""Burst and scheduler-load benchmark: 40 users press Start in the same moment.

* **floor**: 40 raw ``sbatch`` of ``jupyter-lab`` from the base image env at once,
  spread over the compute nodes in turn (bench/common.py ``submit_floor``), each until
  its ``/api/status`` answers (with the job's token);
* **factorylab** and **batchspawner**: 40 demo users start at once through each hub,
  each waiting as the spawn page waits: the progress event stream, then
  ``/user/NAME/api/status`` through the proxy;
* **CPU per start**: the whole machine's busy CPU time (``/proc/stat``) during each burst,
  divided by the starts: the jobs, Slurm, the hub and proxy, and the waiting clients;
* **scheduler load**: with those 40 sessions running, the job-status RPCs slurmctld
  serves in 60 s (``sdiag --reset``, then its per-message-type counts).

Writes ``bench/results/burst.json``. Run as root after ``make up`` (``make bench``).
``BENCH_BURST`` sets the number of users (default 40).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import (
    FLOOR_ENV,
    RESULTS,
    BatchspawnerHub,
    run_floor,
    run_hub,
    write_result,
)
from bench.cpu import busy_cpu_seconds, cpu_by_group, processes
from tests.support.hub import ADMIN_TOKEN_FILE, Hub

USERS = [f"demo{n:02d}" for n in range(1, int(os.environ.get("BENCH_BURST", "40")) + 1)]
LOAD_SECONDS = 60


def summary(times: list[float], failures: list[str]) -> dict:
    """p50/p95/max of the successful starts, and the failures."""
    ordered = sorted(times)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)] if ordered else None
    return {
        "started": len(times),
        "failures": len(failures),
        "failure_messages": failures[:5],
        "p50_s": round(statistics.median(ordered), 2) if ordered else None,
        "p95_s": round(p95, 2) if p95 is not None else None,
        "max_s": round(ordered[-1], 2) if ordered else None,
    }


def burst(start_one) -> tuple[list[float], list[str], dict]:
    """Run ``start_one(user)`` for every user at the same moment: the start times, the
    failures, and the CPU-seconds per start until the last one ended (the whole
    machine's, and by group of processes: bench/cpu.py)."""
    times, failures = [], []
    busy_before, before = busy_cpu_seconds(), processes()
    with ThreadPoolExecutor(len(USERS)) as pool:
        for user, future in [(u, pool.submit(start_one, u)) for u in USERS]:
            try:
                result = future.result()
                times.append(result[0] if isinstance(result, tuple) else result)
            except Exception as exc:  # a failed start is a result, not a crash
                failures.append(f"{user}: {exc}"[:300])
    busy, by_group = busy_cpu_seconds() - busy_before, cpu_by_group(before, processes())
    by_group["ended meanwhile, and the kernel"] = busy - sum(by_group.values())
    starts = max(1, len(times))  # per successful start; the failures are reported too
    cpu = {
        "whole_machine": round(busy / starts, 2),
        "by_group": {name: round(spent / starts, 2) for name, spent in by_group.items()},
    }
    return times, failures, cpu


def status_rpcs_per_minute() -> dict:
    """Job-status RPCs slurmctld serves in LOAD_SECONDS (sdiag), scaled to a minute."""
    subprocess.run(["sdiag", "--reset"], check=True, capture_output=True)
    time.sleep(LOAD_SECONDS)
    out = subprocess.run(["sdiag"], check=True, capture_output=True, text=True).stdout
    counts = {
        name: int(count)
        for name, count in re.findall(
            r"^\s*(REQUEST_\w*JOB\w*INFO\w*)\s+\(\s*\d+\)\s+count:(\d+)", out, re.M
        )
    }
    scale = 60 / LOAD_SECONDS
    return {
        "per_minute": round(sum(counts.values()) * scale, 1),
        "by_type_per_minute": {k: round(v * scale, 1) for k, v in counts.items()},
    }


def wait_quiet(timeout: float = 120) -> bool:
    """Wait until the last burst's servers have exited: shutting 40 of them down takes
    CPU, which must not count in the next burst. False if some still run (reported)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(p.group.startswith("session") for p in processes().values()):
            return True
        time.sleep(1)
    print(f"warning: session processes still running after {timeout} s", flush=True)
    return False


def measure_hub(hub: Hub) -> dict:
    """Burst through ``hub``, measure the scheduler load, then stop everything."""
    tokens = {user: hub.user_token(user) for user in USERS}
    times, failures, cpu = burst(lambda user: run_hub(hub, user, tokens[user], keep=True))
    time.sleep(10)  # let the starts settle
    load = status_rpcs_per_minute()
    with ThreadPoolExecutor(len(USERS)) as pool:
        list(pool.map(hub.stop, USERS))
    return {
        "burst": summary(times, failures),
        "cpu_s_per_start": cpu,
        "scheduler_load": load,
        "servers_exited_after": wait_quiet(),  # False: the next burst began with them
    }


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("make bench runs as root, after make up")
    report: dict = {
        "benchmark": "burst",
        "users": len(USERS),
        "what": "seconds from the start request until each server's /api/status answers",
        "targets": {
            "burst_p95_vs_floor": 1.1,
            "cpu_per_start_vs_floor": 1.1,
            "failures": 0,
            "status_rpcs_per_minute": 4,
        },
    }

    jobs: list[str] = []

    def floor_one(user):
        elapsed, job = run_floor(user, FLOOR_ENV, keep=True)
        jobs.append(job)
        return elapsed

    print(f"burst floor: {len(USERS)} raw sbatch of jupyter-lab…", flush=True)
    times, failures, cpu = burst(floor_one)
    subprocess.run(["scancel", *jobs], check=False)
    report["floor"] = {
        "burst": summary(times, failures),
        "cpu_s_per_start": cpu,
        "servers_exited_after": wait_quiet(),
    }

    print("FactoryLab burst…", flush=True)
    report["factorylab"] = measure_hub(Hub(ADMIN_TOKEN_FILE.read_text().strip()))
    print("batchspawner burst…", flush=True)
    with BatchspawnerHub() as batchspawner:
        report["batchspawner"] = measure_hub(batchspawner)

    methods = ("floor", "factorylab", "batchspawner")
    floor = report["floor"]
    report["ratios"] = {}
    for name in methods[1:]:
        if report[name]["burst"]["p95_s"] and floor["burst"]["p95_s"]:
            ratio = report[name]["burst"]["p95_s"] / floor["burst"]["p95_s"]
            report["ratios"][f"{name}_p95_vs_floor"] = round(ratio, 3)
        ratio = (
            report[name]["cpu_s_per_start"]["whole_machine"]
            / floor["cpu_s_per_start"]["whole_machine"]
        )
        report["ratios"][f"{name}_cpu_per_start_vs_floor"] = round(ratio, 3)
    report["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_result("burst", report)

    print(
        f"\n{'burst of ' + str(len(USERS)):<16}{'p50 s':>8}{'p95 s':>8}{'fails':>7}"
        f"{'CPU-s/start':>13}{'RPC/min':>9}"
    )
    for name in methods:
        values, cpu = report[name]["burst"], report[name]["cpu_s_per_start"]["whole_machine"]
        rpcs = report[name].get("scheduler_load", {}).get("per_minute", "")
        print(
            f"{name:<16}{values['p50_s'] or 0:>8.1f}{values['p95_s'] or 0:>8.1f}"
            f"{values['failures']:>7}{cpu:>13.2f}{rpcs:>9}"
        )
    print("\nCPU-seconds per start, by group of processes:")
    for name in methods:
        groups = ", ".join(
            f"{group} {spent:.2f}"
            for group, spent in report[name]["cpu_s_per_start"]["by_group"].items()
            if spent >= 0.01
        )
        print(f"  {name}: {groups}")
    print(f"\nratios: {report['ratios']}; written to {RESULTS / 'burst.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
