"""Cold-spawn benchmark: FactoryLab vs plain batchspawner 1.3 vs the raw floor.

All three run in the same invocation, interleaved, on the local cluster:

* **floor**: ``sbatch`` of ``jupyter-lab`` from a stock ``pip install jupyterlab`` env
  until its ``/api/status`` answers (the ratios are to this);
* **floor_base_env**: the same, from FactoryLab's own ``base`` image env;
* **factorylab**: POST the user's server to the hub API until ``/user/NAME/api/status``
  answers through the proxy (the "Start" click to a usable session);
* **batchspawner**: the same against a second hub that uses plain
  ``batchspawner.SlurmSpawner`` 1.3 (bench/batchspawner_hub_config.py).

Writes ``bench/results/cold_spawn.json`` and prints a table with ratios to the floor.
Run as root after ``make up``: ``make bench`` (``BENCH_RUNS`` sets the runs per method).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.integration.hub import ADMIN_TOKEN_FILE, Hub, proxied

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
BASE_ENV = Path("/opt/factorylab/envs/base")
BATCHSPAWNER_ENV = Path("/opt/factorylab/envs/bench-batchspawner")
STOCK_ENV = Path("/opt/factorylab/envs/bench-stock")
HUB_VENV = Path("/opt/factorylab/hub")
CHP = Path("/opt/factorylab/proxy/node_modules/.bin/configurable-http-proxy")
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
TIMEOUT = 120


def wait_http(url: str, headers: dict | None = None, timeout: float = TIMEOUT) -> None:
    """Poll ``url`` every 50 ms until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_floor(user: str, env: Path) -> float:
    """sbatch a plain jupyter-lab from ``env`` as ``user``; seconds until /api/status answers."""
    port = free_port()
    script = f"""#!/bin/bash
#SBATCH --job-name=bench-floor
#SBATCH --partition=cpu
#SBATCH --mem=1G
#SBATCH --time=00:10:00
#SBATCH --output=/dev/null
exec {env}/bin/jupyter-lab --no-browser --ip=127.0.0.1 --port={port} \\
  --ServerApp.token='' --ServerApp.password='' --ServerApp.disable_check_xsrf=True
"""
    began = time.perf_counter()
    job = subprocess.run(
        ["sudo", "-n", "-u", user, "/usr/bin/sbatch", "--parsable"],
        input=script,
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    try:
        wait_http(f"http://127.0.0.1:{port}/api/status")
        return time.perf_counter() - began
    finally:
        subprocess.run(["scancel", job], check=False)


def run_hub(hub: Hub, user: str) -> float:
    """Start ``user``'s server through ``hub``; seconds until it answers via the proxy."""
    token = hub.user_token(user)
    began = time.perf_counter()
    response = hub.spawn(user, {})
    assert response.status_code in (201, 202), response.text
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            if proxied(hub, user, "api/status", token).status_code == 200:
                elapsed = time.perf_counter() - began
                break
        except requests.RequestException:
            pass
        time.sleep(0.05)
    else:
        raise TimeoutError(f"{user}'s server did not answer within {TIMEOUT} s")
    hub.stop(user)
    return elapsed


def ensure_stock_env(path: Path, *requirements: str) -> None:
    """A plain ``pip install`` env, as a user would make it (built once)."""
    if (path / ".complete").exists():
        return
    print(f"Building the comparison env {path} (once)…", flush=True)
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--clear", str(path)], check=True)
    subprocess.run([str(path / "bin" / "pip"), "install", "-q", *requirements], check=True)
    (path / ".complete").touch()


def jupyterlab_pin() -> str:
    spec = (REPO / "images" / "base" / "requirements.txt").read_text().splitlines()
    return next(line for line in spec if line.startswith("jupyterlab=="))


def ensure_batchspawner_env() -> None:
    """The base image's spec plus batchspawner 1.3 (its job-side wrapper), stock."""
    ensure_stock_env(
        BATCHSPAWNER_ENV,
        "-r",
        str(REPO / "images" / "base" / "requirements.txt"),
        "batchspawner==1.3.0",
    )


class BatchspawnerHub:
    """A throwaway JupyterHub with plain batchspawner, run as root on ports 8100/8181."""

    def __enter__(self) -> Hub:
        ensure_batchspawner_env()
        self.state = tempfile.mkdtemp(prefix="factorylab-bench-")
        token = secrets.token_hex(32)
        env = dict(
            os.environ,
            BENCH_ENV=str(BATCHSPAWNER_ENV),
            BENCH_STATE=self.state,
            BENCH_TOKEN=token,
            BENCH_CHP=str(CHP),
            CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(16),
        )
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log = open(RESULTS / "batchspawner-hub.log", "w")
        self.process = subprocess.Popen(
            [
                str(HUB_VENV / "bin" / "jupyterhub"),
                "-f",
                str(Path(__file__).parent / "batchspawner_hub_config.py"),
            ],
            cwd=self.state,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        hub = Hub(token, url="http://127.0.0.1:8100")
        wait_http(f"{hub.url}/hub/api/", timeout=60)
        return hub

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            print(
                f"The batchspawner hub's log: {RESULTS / 'batchspawner-hub.log'}", file=sys.stderr
            )
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        subprocess.run(["scancel", "--name=spawner-jupyterhub"], check=False)
        shutil.rmtree(self.state, ignore_errors=True)


def summarise(samples: list[float]) -> dict:
    return {
        "runs_s": [round(s, 3) for s in samples],
        "median_s": round(statistics.median(samples), 3),
        "min_s": round(min(samples), 3),
        "max_s": round(max(samples), 3),
    }


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("make bench runs as root, after make up")
    factorylab = Hub(ADMIN_TOKEN_FILE.read_text().strip())
    ensure_stock_env(STOCK_ENV, jupyterlab_pin())
    samples: dict[str, list[float]] = {
        "floor": [],
        "floor_base_env": [],
        "factorylab": [],
        "batchspawner": [],
    }
    with BatchspawnerHub() as batchspawner:
        # One warm-up each (page cache, first imports), not counted.
        run_floor("demo11", STOCK_ENV), run_floor("demo11", BASE_ENV)
        run_hub(factorylab, "demo16"), run_hub(batchspawner, "demo21")
        for i in range(RUNS):
            samples["floor"].append(run_floor(f"demo{11 + i % 5:02d}", STOCK_ENV))
            samples["floor_base_env"].append(run_floor(f"demo{11 + i % 5:02d}", BASE_ENV))
            samples["factorylab"].append(run_hub(factorylab, f"demo{16 + i % 5:02d}"))
            samples["batchspawner"].append(run_hub(batchspawner, f"demo{21 + i % 5:02d}"))
            print(
                f"run {i + 1}/{RUNS}: "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in samples.items()),
                flush=True,
            )
    result = {name: summarise(values) for name, values in samples.items()}
    floor = result["floor"]["median_s"]
    ratios = {
        "factorylab_vs_floor": round(result["factorylab"]["median_s"] / floor, 3),
        "factorylab_vs_floor_base_env": round(
            result["factorylab"]["median_s"] / result["floor_base_env"]["median_s"], 3
        ),
        "batchspawner_vs_floor": round(result["batchspawner"]["median_s"] / floor, 3),
        "factorylab_vs_batchspawner": round(
            result["factorylab"]["median_s"] / result["batchspawner"]["median_s"], 3
        ),
    }
    report = {
        "benchmark": "cold_spawn",
        "what": "seconds from the start request until the server's /api/status answers",
        "floor": "sbatch of jupyter-lab from a stock pip-installed env (floor_base_env: "
        "from FactoryLab's base image env, which has the fast-start tweak)",
        "runs_per_method": RUNS,
        "target": {"factorylab_vs_floor": 1.15},
        "methods": result,
        "ratios": ratios,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "node": platform.node(),
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cold_spawn.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'method':<16}{'median s':>10}{'min s':>8}{'max s':>8}{'x floor':>9}")
    for name, values in result.items():
        print(
            f"{name:<16}{values['median_s']:>10.2f}{values['min_s']:>8.2f}{values['max_s']:>8.2f}"
            f"{values['median_s'] / floor:>9.2f}"
        )
    print(
        f"\nFactoryLab / floor = {ratios['factorylab_vs_floor']} (target ≤ 1.15); "
        f"written to {RESULTS / 'cold_spawn.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
