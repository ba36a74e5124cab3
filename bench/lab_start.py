"""The Lab profile's start: FactoryLab vs the raw floor on the same partition.

The "Lab, with GPU kernels on demand" profile is a small CPU session (1 CPU, 2 GB, 8 h)
on the demo's ``lab`` partition, whose cores Labs share; GPU kernels come later, as
jobs of their own. Both run in the same invocation, interleaved (each first in turn),
on the demo cluster:

* **floor**: ``sbatch`` of ``jupyter-lab`` from the ``base`` image env on partition
  ``lab`` (1 CPU, 2 GB) on the next compute node in turn, until its ``/api/status``
  answers;
* **factorylab**: POST the user's server with ``profile=lab`` to the hub API, wait on
  the progress event stream as the spawn page does, then ``/user/NAME/api/status``
  through the proxy.

Writes ``bench/results/lab_start.json`` and prints the medians and the ratio.
Run as root after ``make up``: ``make bench`` (``BENCH_RUNS`` sets the runs per method).
"""

from __future__ import annotations

import os
import sys
import time

from bench.common import (
    FLOOR_ENV,
    RESULTS,
    compute_nodes,
    median_ratio,
    print_medians,
    print_run,
    run_floor,
    run_hub,
    summarise,
    write_result,
)
from tests.support.hub import ADMIN_TOKEN_FILE, Hub

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
TARGET = 1.1
FLOOR_REQUEST = {"partition": "lab", "memory": "2G"}
LAB = {"profile": "lab"}


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("make bench runs as root, after make up")
    hub = Hub(ADMIN_TOKEN_FILE.read_text().strip())
    samples: dict[str, list[float]] = {"floor": [], "factorylab": []}
    # one warm-up each (page cache, first imports), not counted
    run_floor("demo11", FLOOR_ENV, **FLOOR_REQUEST)
    run_hub(hub, "demo16", options=LAB)
    starts = {
        "floor": lambda i: run_floor(f"demo{11 + i % 5:02d}", FLOOR_ENV, **FLOOR_REQUEST),
        "factorylab": lambda i: run_hub(hub, f"demo{16 + i % 5:02d}", options=LAB),
    }
    for i in range(RUNS):
        # each goes first in turn (the first start of a pair may meet a busier scheduler)
        for name in sorted(starts, reverse=bool(i % 2)):
            samples[name].append(starts[name](i))
        print_run(i, RUNS, samples)
    result = {name: summarise(values) for name, values in samples.items()}
    ratio = median_ratio(result, "factorylab")
    report = {
        "benchmark": "lab_start",
        "what": "seconds from the start request until the server's /api/status answers, "
        "for the Lab profile (partition lab: 1 CPU, 2 GB, cores shared)",
        "floor": "sbatch of jupyter-lab from FactoryLab's base image env on partition lab, "
        "1 CPU, 2 GB",
        "runs_per_method": RUNS,
        "target": {"factorylab_vs_floor": TARGET},
        "methods": result,
        "ratios": {"factorylab_vs_floor": ratio},
        "machine": {"cpus": os.cpu_count(), "compute_nodes": list(compute_nodes())},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_result("lab_start", report)
    print_medians(result)
    written = RESULTS / "lab_start.json"
    print(f"\nFactoryLab / floor = {ratio} (target ≤ {TARGET}); written to {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
