"""Where a server's start goes: what each server extension and bytecode cost (ablation).

A bare ``jupyter-lab`` from the base image env starts on the login node as an ordinary
user, with every server extension the env enables, then with each one left out, then
with none but JupyterLab's own. A last variant starts with an empty bytecode cache
(``PYTHONPYCACHEPREFIX``), which is what a session pays where the env was not compiled.
Each variant is measured in turns, ``RUNS`` times: the server's own CPU-seconds when its
``/api/status`` first answers, and again with its PSS (``smaps_rollup``) once it has
been idle for ``SETTLE`` s. An extension's cost is "all" minus "all but it".

Starts are noisy on 2 cores (about ±0.15 CPU-s), so each extension's import is also
timed alone, in a process that has already imported Jupyter Server, JupyterLab and every
other extension; JupyterHub's single-user server (and its database layer alone) are
timed on top of all of them: what a session imports that the floor does not.

No Slurm and no hub: this isolates the server. `bench.memory` measures whole sessions.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import BASE_ENV, free_port, wait_http, write_result
from bench.cpu import own_cpu
from bench.memory import pss_mib

RUNS = int(os.environ.get("BENCH_EXTENSION_RUNS", "5"))
IMPORT_RUNS = 5
SETTLE = 4.0
USER = "demo40"


def enabled_extensions(env: Path = BASE_ENV) -> list[str]:
    """The server extensions the env's ``jupyter_server_config.d`` enables, but JupyterLab."""
    names: set[str] = set()
    for path in sorted((env / "etc/jupyter/jupyter_server_config.d").glob("*.json")):
        config = json.loads(path.read_text()).get("ServerApp", {})
        names |= {name for name, on in config.get("jpserver_extensions", {}).items() if on}
    return sorted(names - {"jupyterlab"})


def start_once(disabled: list[str], cold_bytecode: bool = False) -> dict:
    """Start jupyter-lab as :data:`USER` with ``disabled`` server extensions off."""
    account = pwd.getpwnam(USER)
    port, token = free_port(), secrets.token_hex(16)
    off = [f"--ServerApp.jpserver_extensions={name}=False" for name in disabled]
    argv = [
        str(BASE_ENV / "bin/jupyter-lab"),
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        *off,
    ]
    with tempfile.TemporaryDirectory(prefix="bench-pyc-") as cache:
        os.chown(cache, account.pw_uid, account.pw_gid)
        env = {
            "PATH": f"{BASE_ENV}/bin:/usr/bin:/bin",
            "HOME": account.pw_dir,
            "USER": USER,
            "JUPYTER_TOKEN": token,
        }
        if cold_bytecode:
            env["PYTHONPYCACHEPREFIX"] = cache
        began = time.perf_counter()
        server = subprocess.Popen(
            argv,
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
            env=env,
            cwd=account.pw_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}/api/status"
            wait_http(url, headers={"Authorization": f"token {token}"})
            ready = {"seconds": time.perf_counter() - began, "cpu": own_cpu(server.pid)[0]}
            time.sleep(SETTLE)
            ready.update(cpu_settled=own_cpu(server.pid)[0], pss_mib=pss_mib(server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
    return ready


IMPORT_PROBE = """
import sys, time
import jupyter_server.serverapp, jupyterlab.labapp
for loaded in sys.argv[2:]:
    __import__(loaded)
began = time.process_time()
__import__(sys.argv[1])
print(time.process_time() - began)
"""


def import_cost(module: str, loaded: list[str], env: Path = BASE_ENV) -> float:
    """CPU-seconds to import ``module`` in a process that has Jupyter Server, JupyterLab
    and ``loaded`` already (what the module adds to such a server's start), from ``env``."""
    out = subprocess.run(
        [str(env / "bin/python"), "-c", IMPORT_PROBE, module, *loaded],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out)


def import_costs(extensions: list[str]) -> dict[str, float]:
    """Medians of :func:`import_cost`: each extension on top of every other one, as in a
    bare jupyter-lab's start; then JupyterHub's single-user server, and its database layer
    alone, on top of all of them (what a session adds to the floor's imports)."""
    cases = {name: [e for e in extensions if e != name] for name in extensions}
    cases |= {module: extensions for module in ("jupyterhub.singleuser", "jupyterhub.orm")}
    return {
        module: round(statistics.median(import_cost(module, loaded) for _ in range(IMPORT_RUNS)), 3)
        for module, loaded in cases.items()
    }


def main() -> int:
    extensions = enabled_extensions()
    imports = import_costs(extensions)
    print(f"{'import, on top of the others':40} {'CPU-s':>7}")
    for module, seconds in imports.items():
        print(f"{module:40} {seconds:7.3f}")
    variants: dict[str, dict] = {"all": {"disabled": []}}
    variants |= {f"all but {name}": {"disabled": [name]} for name in extensions}
    variants["jupyterlab only"] = {"disabled": extensions}
    variants["all, empty bytecode cache"] = {"disabled": [], "cold_bytecode": True}
    samples: dict[str, list[dict]] = {name: [] for name in variants}
    start_once([])  # warm the page cache once, unmeasured
    for run in range(RUNS):
        for name, variant in variants.items():
            samples[name].append(start_once(**variant))
        print(f"run {run + 1}/{RUNS} done", flush=True)
    medians = {
        name: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for name, runs in samples.items()
    }
    whole = medians["all"]
    costs = {
        name: {
            key: round(value - medians[name][key], 3) if name != "all" else round(value, 3)
            for key, value in whole.items()
        }
        for name in medians
    }
    print(f"{'variant':40} {'ready s':>8} {'CPU-s':>7} {'settled':>8} {'PSS MiB':>8}")
    for name, median in medians.items():
        print(
            f"{name:40} {median['seconds']:8.2f} {median['cpu']:7.2f}"
            f" {median['cpu_settled']:8.2f} {median['pss_mib']:8.1f}"
        )
    result = {
        "benchmark": "extensions",
        "runs": RUNS,
        "settle_seconds": SETTLE,
        "extensions": extensions,
        "samples": samples,
        "medians": medians,
        "all_minus_variant": costs,
        "import_cpu_seconds_on_top_of_the_others": imports,
    }
    write_result("extensions", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
