"""Cold-spawn benchmark: FactoryLab vs plain batchspawner 1.3 vs the raw floor.

All three run in the same invocation, interleaved, on the demo cluster (from the login
node; every server runs on a compute node):

* **floor**: ``sbatch`` of ``jupyter-lab`` from FactoryLab's own ``base`` image env
  on the next compute node in turn, listening on that node's address with a token made
  for the job, until its ``/api/status`` answers (the ratios are to this);
* **factorylab**: POST the user's server to the hub API, wait on the progress event
  stream as the spawn page does, then ``/user/NAME/api/status`` through the proxy (the
  "Start" click to a usable session);
* **batchspawner**: the same against a second hub that uses plain
  ``batchspawner.SlurmSpawner`` 1.3 (bench/batchspawner_hub_config.py).

Writes ``bench/results/cold_spawn.json`` and prints a table with ratios to the floor.
Run as root after ``make up``: ``make bench`` (``BENCH_RUNS`` sets the runs per method).
"""

from __future__ import annotations

import os
import platform
import sys
import time

from bench.common import (
    FLOOR_ENV,
    RESULTS,
    BatchspawnerHub,
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
TARGET = 1.05


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("make bench runs as root, after make up")
    factorylab = Hub(ADMIN_TOKEN_FILE.read_text().strip())
    samples: dict[str, list[float]] = {"floor": [], "factorylab": [], "batchspawner": []}
    with BatchspawnerHub() as batchspawner:
        # One warm-up each (page cache, first imports), not counted.
        run_floor("demo11", FLOOR_ENV)
        run_hub(factorylab, "demo16"), run_hub(batchspawner, "demo21")
        for i in range(RUNS):
            samples["floor"].append(run_floor(f"demo{11 + i % 5:02d}", FLOOR_ENV))
            samples["factorylab"].append(run_hub(factorylab, f"demo{16 + i % 5:02d}"))
            samples["batchspawner"].append(run_hub(batchspawner, f"demo{21 + i % 5:02d}"))
            print_run(i, RUNS, samples)
    result = {name: summarise(values) for name, values in samples.items()}
    ratios = {
        "factorylab_vs_floor": median_ratio(result, "factorylab"),
        "batchspawner_vs_floor": median_ratio(result, "batchspawner"),
        "factorylab_vs_batchspawner": median_ratio(result, "factorylab", "batchspawner"),
    }
    report = {
        "benchmark": "cold_spawn",
        "what": "seconds from the start request until the server's /api/status answers",
        "floor": "sbatch of jupyter-lab from FactoryLab's base image env (the same environment "
        "as the sessions)",
        "runs_per_method": RUNS,
        "target": {"factorylab_vs_floor": TARGET},
        "methods": result,
        "ratios": ratios,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "login_node": platform.node(),  # where the bench, the hubs and proxies run
            "compute_nodes": list(compute_nodes()),  # where the servers run (sinfo)
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_result("cold_spawn", report)
    print_medians(result)
    print(
        f"\nFactoryLab / floor = {ratios['factorylab_vs_floor']} (target ≤ {TARGET}); "
        f"written to {RESULTS / 'cold_spawn.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
