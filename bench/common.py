"""Pieces shared by the benchmarks: environments, the comparison hub, timing helpers."""

from __future__ import annotations

import functools
import itertools
import json
import os
import pwd
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from tests.support.hub import Hub, proxied, sbatch_as, spawn_events

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
BASE_ENV = Path("/opt/factorylab/envs/base")
BATCHSPAWNER_ENV = Path("/opt/factorylab/envs/bench-batchspawner")
#: The floor's environment: FactoryLab's own base image env, so that the floor differs
#: from a session only in what FactoryLab adds (the hub, its launcher and extensions).
FLOOR_ENV = BASE_ENV
HUB_VENV = Path("/opt/factorylab/hub")
CHP = Path("/opt/factorylab/proxy/node_modules/.bin/configurable-http-proxy")
SITE_YAML = Path("/etc/factorylab/site.yaml")  # the deployed site file (root reads it)
#: The login node's address on the cluster network, where the demo site file has none.
LOGIN_ADDRESS = "10.213.0.1"
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
    """A port free on this (the login) node; the floor's node is another network, so a
    port taken there makes its server fail (port_retries=0) and the run time out."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@functools.cache
def compute_nodes() -> tuple[str, ...]:
    """The compute nodes of partition cpu (one ``sinfo``, then cached), sorted."""
    out = subprocess.run(
        ["sinfo", "--noheader", "--Node", "--partition=cpu", "--format=%N"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    nodes = tuple(sorted({line.strip() for line in out.splitlines() if line.strip()}))
    if not nodes:
        raise RuntimeError("sinfo lists no node in partition cpu")
    return nodes


_turns = itertools.count()
_turns_lock = threading.Lock()


def next_node() -> str:
    """The compute nodes in turn (round-robin; safe from the burst's threads)."""
    nodes = compute_nodes()
    with _turns_lock:
        return nodes[next(_turns) % len(nodes)]


@dataclass(frozen=True)
class Floor:
    """A floor job: a plain jupyter-lab on ``node``, at ``address:port``, with ``token``."""

    job: str
    node: str
    address: str
    port: int
    token: str

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}


def submit_floor(user: str, env: Path, partition: str = "cpu", memory: str = "1G") -> Floor:
    """sbatch a plain jupyter-lab from ``env`` as ``user`` on the next compute node (of
    ``partition``, with 1 CPU and ``memory``).

    It listens on that node's address (the login node must reach it), so it needs a
    token: a random one per job, exported in the batch script (readable by its owner and
    the admins only), never on a command line, where ``ps`` shows it to every user.
    The node's name resolves to the same address here as on the node (/etc/hosts).
    """
    node = next_node()
    address = socket.gethostbyname(node)
    port = free_port()
    token = secrets.token_hex(16)
    script = f"""#!/bin/bash
#SBATCH --job-name=bench-floor
#SBATCH --partition={partition}
#SBATCH --nodelist={node}
#SBATCH --mem={memory}
#SBATCH --time=00:10:00
#SBATCH --chdir={pwd.getpwnam(user).pw_dir}
export JUPYTER_TOKEN={token}
exec {env}/bin/jupyter-lab --no-browser --ip={address} --port={port} \\
  --ServerApp.port_retries=0
"""
    return Floor(sbatch_as(user, script=script), node, address, port, token)


def run_floor(
    user: str, env: Path, keep: bool = False, **request: str
) -> float | tuple[float, str]:
    """sbatch a plain jupyter-lab from ``env`` as ``user``; seconds until /api/status answers.

    With ``keep`` the job keeps running and ``(seconds, job_id)`` is returned. ``request``:
    :func:`submit_floor`'s partition and memory.
    """
    began = time.perf_counter()
    floor = submit_floor(user, env, **request)
    try:
        wait_http(
            f"{floor.url}/api/status",
            headers=floor.headers,
            timeout=TIMEOUT * 3 if keep else TIMEOUT,
        )
        elapsed = time.perf_counter() - began
    except BaseException:
        subprocess.run(["scancel", floor.job], check=False)
        raise
    if keep:
        return elapsed, floor.job
    subprocess.run(["scancel", floor.job], check=False)
    return elapsed


#: What every benchmarked start asks for: the floor's partition and size (1 CPU, 1 GB).
#: Explicit, so that a choice a user made earlier (a GPU, a bigger image) is not reused.
BENCH_OPTIONS = {"partition": "cpu", "image": "base", "cpus": "1", "memory": "1G"}


def wait_as_spawn_page(hub: Hub, user: str, token: str, timeout: float) -> None:
    """Wait for ``user``'s server as the spawn page does, then open it once.

    The page listens to the hub's progress event stream and, on its ``ready`` event, goes
    to the server's URL through the proxy. Polling that URL instead would make every
    waiting client hit the hub (the proxy has no route yet) many times a second.
    """
    events = spawn_events(hub, user, timeout)
    if not events or not events[-1].get("ready"):
        last = events[-1].get("message") if events else "no progress events"
        raise RuntimeError(f"{user}'s start did not become ready: {last}")
    answer = proxied(hub, user, "api/status", token)
    if answer.status_code != 200:
        raise RuntimeError(f"{user}'s ready server answered {answer.status_code}")


def run_hub(
    hub: Hub,
    user: str,
    token: str | None = None,
    keep: bool = False,
    options: dict[str, str] | None = None,
) -> float:
    """Start ``user``'s server through ``hub``: seconds until it answers through the proxy,
    waiting as a browser on the spawn page waits (:func:`wait_as_spawn_page`).

    The server asks for ``options`` (the form's fields; :data:`BENCH_OPTIONS` unless
    given), and is stopped again unless ``keep``.
    """
    token = token or hub.user_token(user)
    began = time.perf_counter()
    response = hub.spawn(user, options or BENCH_OPTIONS)
    if response.status_code not in (201, 202):
        raise RuntimeError(f"{user}'s start was refused: {response.status_code} {response.text}")
    try:
        wait_as_spawn_page(hub, user, token, TIMEOUT * 3 if keep else TIMEOUT)
        elapsed = time.perf_counter() - began
    finally:
        if not keep:
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


def ensure_batchspawner_env() -> None:
    """The base image's spec plus batchspawner 1.3 (its job-side wrapper), stock."""
    ensure_stock_env(
        BATCHSPAWNER_ENV,
        "-r",
        str(REPO / "images" / "base" / "requirements.txt"),
        "batchspawner==1.3.0",
    )


BENCH_USER = "factorylab-bench"
BENCH_SUDOERS = Path("/etc/sudoers.d/factorylab-bench")


def ensure_bench_account() -> None:
    """The unprivileged account the comparison hub runs as, and its sudo rule.

    batchspawner submits with ``sudo -E -u USER sbatch`` (the job's token travels in the
    environment), so its rule needs SETENV; it holds only while the bench runs.
    """
    try:
        pwd.getpwnam(BENCH_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", BENCH_USER],
            check=True,
        )
    slurm = ", ".join(f"/usr/bin/{verb}" for verb in ("sbatch", "squeue", "scancel"))
    rule = f"{BENCH_USER} ALL=(%factorylab-users) NOPASSWD:SETENV: {slurm}\n"
    staged = BENCH_SUDOERS.with_suffix(".tmp")
    staged.write_text(rule)
    staged.chmod(0o440)
    subprocess.run(["visudo", "-cqf", str(staged)], check=True)
    staged.replace(BENCH_SUDOERS)


def site_hub_addresses() -> tuple[str, str]:
    """The site file's ``hub.hub_ip`` and ``hub.hub_connect_ip`` (the login node's address
    on the cluster network), or :data:`LOGIN_ADDRESS` for a key it lacks."""
    try:
        hub = (yaml.safe_load(SITE_YAML.read_text()) or {}).get("hub") or {}
    except FileNotFoundError:
        hub = {}
    return hub.get("hub_ip", LOGIN_ADDRESS), hub.get("hub_connect_ip", LOGIN_ADDRESS)


class BatchspawnerHub:
    """A throwaway JupyterHub with plain batchspawner: its proxy on loopback ports
    8100/8101 of this (the login) node, its API on port 8181 of the login node's cluster
    address (the jobs on the compute nodes post their port there).

    It runs as :data:`BENCH_USER`, never root; its users log in with a password made
    for this run, and its job API accepts only a port (batchspawner_hub_config.py).
    """

    def __init__(self, build_env: bool = True):
        self.build_env = build_env  # the jobs' environment; not needed to log in

    def __enter__(self) -> Hub:
        if self.build_env:
            ensure_batchspawner_env()
        ensure_bench_account()
        account = pwd.getpwnam(BENCH_USER)
        self.state = tempfile.mkdtemp(prefix="factorylab-bench-")
        os.chown(self.state, account.pw_uid, account.pw_gid)
        token = secrets.token_hex(32)
        self.password = secrets.token_urlsafe(24)
        hub_ip, hub_connect_ip = site_hub_addresses()  # the hub cannot read the site file
        env = dict(
            PATH="/usr/local/bin:/usr/bin:/bin",
            LANG=os.environ.get("LANG", "C.UTF-8"),
            HOME=self.state,
            BENCH_ENV=str(BATCHSPAWNER_ENV),
            BENCH_STATE=self.state,
            BENCH_TOKEN=token,
            BENCH_PASSWORD=self.password,
            BENCH_HUB_IP=hub_ip,
            BENCH_HUB_CONNECT_IP=hub_connect_ip,
            BENCH_CHP=str(CHP),
            CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(16),
        )
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log = open(RESULTS / "batchspawner-hub.log", "w")
        config = Path(self.state) / "jupyterhub_config.py"  # the repo may be root's alone
        shutil.copyfile(Path(__file__).parent / "batchspawner_hub_config.py", config)
        self.process = subprocess.Popen(
            [str(HUB_VENV / "bin" / "jupyterhub"), "-f", str(config)],
            cwd=self.state,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
        )
        hub = Hub(token, url="http://127.0.0.1:8100")
        try:
            wait_http(f"{hub.url}/hub/api/", timeout=60)
        except BaseException:
            self.__exit__(TimeoutError, None, None)
            raise
        return hub

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            print(
                f"The batchspawner hub's log: {RESULTS / 'batchspawner-hub.log'}", file=sys.stderr
            )
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        BENCH_SUDOERS.unlink(missing_ok=True)
        subprocess.run(["scancel", "--name=spawner-jupyterhub"], check=False)
        shutil.rmtree(self.state, ignore_errors=True)


def write_result(name: str, report: dict) -> Path:
    """Write ``report`` as ``bench/results/NAME.json``; return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def summarise(samples: list[float]) -> dict:
    return {
        "runs_s": [round(s, 3) for s in samples],
        "median_s": round(statistics.median(samples), 3),
        "min_s": round(min(samples), 3),
        "max_s": round(max(samples), 3),
    }


def median_ratio(result: dict, name: str, to: str = "floor") -> float:
    """``name``'s median over ``to``'s, from :func:`summarise` results."""
    return round(result[name]["median_s"] / result[to]["median_s"], 3)


def print_run(index: int, runs: int, samples: dict[str, list[float]]) -> None:
    """One line per round of interleaved runs."""
    latest = ", ".join(f"{name} {values[-1]:.2f} s" for name, values in samples.items())
    print(f"run {index + 1}/{runs}: {latest}", flush=True)


def print_medians(result: dict, floor: str = "floor") -> None:
    """The table of medians, extremes and ratios to the floor."""
    print(f"\n{'method':<16}{'median s':>10}{'min s':>8}{'max s':>8}{'x floor':>9}")
    for name, values in result.items():
        print(
            f"{name:<16}{values['median_s']:>10.2f}{values['min_s']:>8.2f}{values['max_s']:>8.2f}"
            f"{median_ratio(result, name, floor):>9.2f}"
        )
