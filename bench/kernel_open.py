"""Open a GPU notebook kernel in a running Lab, until the first cell's output (issue 17).

Both run in the same invocation, interleaved, on the demo cluster:

* **floor**: ``sbatch`` of a bare ``ipykernel`` from the same image env (pytorch) on the
  GPU partition (1 GPU, 1 CPU, 2 GB, as the kernel), and a client that connects and
  executes one cell (bench/kernel_floor.py, with the image env's jupyter_client);
* **factorylab**: in a Lab that already runs (profile ``lab``), ``POST api/kernels`` of
  the site's ``pytorch-gpu`` kernel through the proxy, then the same cell over the
  kernel's websocket, as JupyterLab does. The provisioner asks the hub, submits the
  job, waits for its agent, and the kernel speaks CurveZMQ.

Each run ends its kernel (and job) and waits until Slurm shows the GPU free. Writes
``bench/results/kernel_open.json``. ``BENCH_RUNS`` sets the runs per method.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import median_ratio, print_medians, print_run, summarise, write_result
from tests.support.hub import ADMIN_TOKEN_FILE, Hub, proxied, run_in_kernel, squeue_active

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
TARGET = 1.15
ENV = Path("/opt/factorylab/envs/pytorch")
LAB_USER, FLOOR_USER = "demo14", "demo15"
SPEC = "slurm-pytorch-gpu"
CELL = (
    "import os, socket; print('GPU', os.environ.get('CUDA_VISIBLE_DEVICES'), socket.gethostname())"
)


def gpu_jobs(user: str) -> list[str]:
    return squeue_active(["-u", user, "-p", "gpu", "-o", "%i"]).split()


def wait_no_gpu_job(user: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while gpu_jobs(user):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{user}'s GPU jobs did not end: {gpu_jobs(user)}")
        time.sleep(0.2)


def run_floor() -> float:
    script = Path(__file__).with_name("kernel_floor.py")
    done = subprocess.run(
        [str(ENV / "bin" / "python"), str(script), FLOOR_USER, str(ENV)],
        capture_output=True,
        text=True,
        timeout=400,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the floor failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["output"].startswith("GPU "), result
    wait_no_gpu_job(FLOOR_USER)
    return result["seconds"]


def run_factorylab(hub: Hub, token: str) -> float:
    began = time.perf_counter()
    response = proxied(
        hub, LAB_USER, "api/kernels", token, method="POST", json={"name": SPEC}, timeout=400
    )
    if response.status_code != 201:
        raise RuntimeError(f"the kernel did not start: {response.status_code} {response.text}")
    kernel_id = response.json()["id"]
    try:
        output = run_in_kernel(hub, LAB_USER, token, CELL, timeout=120, kernel_id=kernel_id)
        elapsed = time.perf_counter() - began
        assert output.startswith("GPU "), output
    finally:
        proxied(hub, LAB_USER, f"api/kernels/{kernel_id}", token, method="DELETE", timeout=60)
    wait_no_gpu_job(LAB_USER)
    return elapsed


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("make bench runs as root, after make up")
    hub = Hub(ADMIN_TOKEN_FILE.read_text().strip())
    hub.stop(LAB_USER)
    hub.start(LAB_USER, {"profile": "lab"})
    token = hub.user_token(LAB_USER)
    samples: dict[str, list[float]] = {"floor": [], "factorylab": []}
    try:
        run_floor(), run_factorylab(hub, token)  # warm-up (page cache, imports), not counted
        for i in range(RUNS):
            samples["floor"].append(run_floor())
            samples["factorylab"].append(run_factorylab(hub, token))
            print_run(i, RUNS, samples)
    finally:
        hub.stop(LAB_USER)
    result = {name: summarise(values) for name, values in samples.items()}
    ratio = median_ratio(result, "factorylab")
    report = {
        "what": "open a GPU kernel in a running Lab until the first cell's output (s)",
        "runs": RUNS,
        "results": result,
        "ratio_to_floor": round(ratio, 3),
        "target": TARGET,
        "met": ratio <= TARGET,
    }
    path = write_result("kernel_open", report)
    print_medians(result)
    print(f"factorylab / floor = {ratio:.2f} (goal {TARGET}); written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
