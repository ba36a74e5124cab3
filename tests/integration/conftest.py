"""Integration tests: the real hub, proxy and Slurm brought up by `make up`.

They fail (not skip) when the cluster is missing: `make test` brings it up first.
"""

import os
import subprocess
import time

import pytest
import requests

from ..support.hub import ADMIN_TOKEN_FILE, HUB_URL, Hub, sbatch_as, squeue_active
from ..support.nodes import gpu_nodes


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Tests marked ``last`` (make down / make up) run after all others, in their order.

    Whatever the file names, the order given on the command line, or another plugin's
    reordering (trylast: this runs after them): nothing may run on a cluster that such a
    test has taken down, or while it brings the cluster back.
    """
    items[:] = sorted(items, key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session")
def hub() -> Hub:
    if os.geteuid() != 0:
        pytest.fail(
            "integration tests need root (they read the admin token and /proc); use make test"
        )
    if not ADMIN_TOKEN_FILE.exists():
        pytest.fail(f"{ADMIN_TOKEN_FILE} is missing: run `make up` (as root) first")
    try:
        requests.get(f"{HUB_URL}/hub/api/", timeout=10).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"the hub does not answer at {HUB_URL} ({exc}); run `make up`")
    return Hub(ADMIN_TOKEN_FILE.read_text().strip())


@pytest.fixture
def session(hub):
    """Start sessions for demo users; stop them all after the test."""
    started = []

    def start(user, options=None):
        started.append(user)
        hub.stop(user)  # a leftover from an interrupted run must not fail this test
        return hub.start(user, options)

    yield start
    for user in started:
        hub.stop(user)


@pytest.fixture(scope="module")
def tls_hub(hub):
    """The production-shaped second hub: OIDC login, https, internal SSL (tls_hub.py).

    Per test module, so that it never runs alongside the other modules' tests."""
    from . import tls_hub as module

    running = module.start()
    yield running
    module.stop(running)


def take_gpus(nodes: list[str] | None = None) -> list[str]:
    """Jobs of another user (demo29) that hold every GPU of ``nodes`` (default: every GPU
    node; 4 H100 on c01, 2 A100 on c02, …), running when this returns; their ids."""
    jobs = [
        sbatch_as("demo29", "-p", "gpu", "-w", node, f"--gres={gres}")
        for node, gres in gpu_nodes().items()
        if nodes is None or node in nodes
    ]
    deadline = time.monotonic() + 30
    while squeue_active(["-j", ",".join(jobs), "-o", "%T"]).split() != ["RUNNING"] * len(jobs):
        if time.monotonic() > deadline:
            subprocess.run(["scancel", *jobs], check=False)
            raise AssertionError(f"the GPU-holding jobs did not all run within 30 s: {jobs}")
        time.sleep(0.3)
    return jobs


@pytest.fixture
def gpus_full():
    """Every GPU of the cluster, taken by another user's jobs (:func:`take_gpus`)."""
    jobs = take_gpus()
    yield jobs
    subprocess.run(["scancel", *jobs], check=False)
