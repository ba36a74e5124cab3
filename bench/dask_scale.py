"""Dask scale-out benchmark: ``cluster.scale(4)`` to 4 connected workers.

Both methods run in the same FactoryLab session's kernel (its scheduler on the session's
compute node, the same image, the same Slurm; the workers wherever Slurm places them in
the partition, on any compute node), interleaved:

* **factorylab**: ``SLURMCluster()`` with no arguments (the session's Dask
  configuration), then ``cluster.scale(4)`` until the scheduler sees 4 workers;
* **floor**: the same work by hand: a ``dask scheduler`` process on the session node's
  address, then 4 ``sbatch`` jobs of ``python -m distributed.cli.dask_worker`` with the
  same partition, size and image, until the scheduler sees 4 workers. The ratio is to
  this. Like FactoryLab's, it talks mutual TLS (with the session's certificates): see
  ``floor_scale``.

Writes ``bench/results/dask_scale.json``. Run as root after ``make up`` (``make bench``).
"""

from __future__ import annotations

import os
import platform
import sys

from bench.common import BENCH_OPTIONS, RESULTS, summarise, write_result
from tests.support.hub import ADMIN_TOKEN_FILE, Hub, proxied, run_in_kernel

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
USER = "demo10"
WORKERS = 4

SETUP = """
import json, os, shlex, socket, subprocess, sys, tempfile, time
import dask
from dask_jobqueue import SLURMCluster
from distributed import Client

def factorylab_scale(n):
    cluster = SLURMCluster()
    client = Client(cluster)
    started = time.perf_counter()
    cluster.scale(n)
    client.wait_for_workers(n, timeout=300)
    elapsed = time.perf_counter() - started
    client.close(); cluster.close()
    return elapsed

def floor_tls(role):
    # The session's own CA, certificate and key (its Dask configuration names them).
    files = [dask.config.get("distributed.comm.tls.ca-file", None),
             dask.config.get(f"distributed.comm.tls.{role}.cert", None),
             dask.config.get(f"distributed.comm.tls.{role}.key", None)]
    if not all(files):
        raise RuntimeError("the session's Dask configuration names no TLS files")
    return ["--protocol", "tls", "--tls-ca-file", files[0], "--tls-cert", files[1],
            "--tls-key", files[2]]

def floor_scale(n):
    # Workers on other nodes must reach the scheduler, so it listens on this node's
    # address, as FactoryLab's does; anything on the cluster network needs encryption or
    # authentication, so, like FactoryLab's, scheduler and workers talk mutual TLS with
    # the session's certificates (made when the session started, as FactoryLab's are; the
    # session's configuration requires encryption anyway). Same protocol, same handshakes
    # and the same placement on both sides: the comparison stays fair. The workers have
    # no dashboard, as FactoryLab's have none; nor has the floor's scheduler (it would
    # listen on the node unauthenticated; the scheduler starts before the clock does).
    folder = tempfile.mkdtemp(prefix="bench-floor-")
    scheduler_file = os.path.join(folder, "scheduler.json")
    host = socket.gethostbyname(socket.gethostname())  # this node's own address
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", host,
         "--port", "0", "--no-dashboard", "--scheduler-file", scheduler_file,
         *floor_tls("scheduler")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    while not os.path.exists(scheduler_file):
        if scheduler.poll() is not None:
            raise RuntimeError(f"the floor's scheduler exited ({scheduler.returncode})")
        time.sleep(0.05)
    time.sleep(0.2)
    address = json.load(open(scheduler_file))["address"]
    if not address.startswith("tls://"):
        raise RuntimeError(f"the floor's scheduler is not on TLS: {address}")
    client = Client(address)  # the session's TLS configuration: its client certificate
    worker = shlex.join([sys.executable, "-m", "distributed.cli.dask_worker", address,
                         "--nthreads", "1", "--memory-limit", "1GiB", "--nworkers", "1",
                         *floor_tls("worker"), "--no-dashboard"])
    script = (
        "#!/bin/bash\\n#SBATCH -J bench-dask-floor\\n#SBATCH -p cpu\\n#SBATCH -n 1\\n"
        "#SBATCH --cpus-per-task=1\\n#SBATCH --mem=1G\\n#SBATCH -t 00:10:00\\n"
        "#SBATCH -o /dev/null\\n"
        f"exec {worker}\\n"
    )
    started = time.perf_counter()
    jobs = [
        subprocess.run(["sbatch", "--parsable"], input=script, capture_output=True,
                       text=True, check=True).stdout.strip()
        for _ in range(n)
    ]
    client.wait_for_workers(n, timeout=300)
    elapsed = time.perf_counter() - started
    client.close()
    subprocess.run(["scancel", *jobs], check=False)
    scheduler.terminate(); scheduler.wait()
    return elapsed
print("ready")
"""


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("make bench runs as root, after make up")
    hub = Hub(ADMIN_TOKEN_FILE.read_text().strip())
    hub.stop(USER)
    hub.start(USER, BENCH_OPTIONS)
    token = hub.user_token(USER)
    kernel = proxied(hub, USER, "api/kernels", token, method="POST", json={"name": "python3"})
    kernel_id = kernel.json()["id"]
    samples: dict[str, list[float]] = {"floor": [], "factorylab": []}
    try:
        run_in_kernel(hub, USER, token, SETUP, kernel_id=kernel_id)
        # one warm-up each (page cache, first imports on the workers), not counted
        for method in ("floor", "factorylab"):
            run_in_kernel(hub, USER, token, f"{method}_scale({WORKERS})", 400, kernel_id)
        for i in range(RUNS):
            for method in ("floor", "factorylab"):
                code = f"print({method}_scale({WORKERS}))"
                seconds = float(run_in_kernel(hub, USER, token, code, 400, kernel_id))
                samples[method].append(seconds)
            print(
                f"run {i + 1}/{RUNS}: "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in samples.items()),
                flush=True,
            )
    finally:
        proxied(hub, USER, f"api/kernels/{kernel_id}", token, method="DELETE")
        hub.stop(USER)
    result = {name: summarise(values) for name, values in samples.items()}
    report = {
        "benchmark": "dask_scale",
        "what": f"seconds from cluster.scale({WORKERS}) until {WORKERS} workers are connected",
        "workers": WORKERS,
        "runs": RUNS,
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": result,
        "ratios": {
            "factorylab_vs_floor": round(
                result["factorylab"]["median_s"] / result["floor"]["median_s"], 3
            )
        },
    }
    write_result("dask_scale", report)
    for name, values in result.items():
        print(f"{name:12s} median {values['median_s']:.2f} s  (min {values['min_s']:.2f})")
    print(f"ratios: {report['ratios']}; written to {RESULTS / 'dask_scale.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
