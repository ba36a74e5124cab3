"""Dask attached to every session, on the real cluster and through the real hub.

A notebook run by nbclient inside the session calls ``SLURMCluster()`` with no
arguments, scales to two real Slurm worker jobs and computes on them; the dashboard
link answers through the hub's proxy; the Lab sidebar's factory makes the same
cluster; and stopping the server leaves no worker job behind.
"""

import re
import subprocess
import time

import pytest

from ..support.hub import execute_notebook, proxied, run_in_kernel, squeue_active

NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "cells": [
        {
            "cell_type": "code",
            "id": f"cell{number}",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": source,
        }
        for number, source in enumerate(
            [
                "from dask_jobqueue import SLURMCluster\n"
                "from distributed import Client\n"
                "cluster = SLURMCluster()\n"
                "print(cluster.job_script())",
                "cluster.scale(2)\n"
                "client = Client(cluster)\n"
                "client.wait_for_workers(2, timeout=240)\n"
                "print('workers', len(client.scheduler_info()['workers']))\n"
                "print('jobs', ' '.join(sorted(job.job_id for job in cluster.workers.values())))",
                "import dask.array as da\n"
                "total = int(da.arange(2_000_000, chunks=250_000).sum().compute())\n"
                "assert total == 2_000_000 * 1_999_999 // 2\n"
                "print('total', total)",
                "import os\n"
                "print('dashboard', cluster.dashboard_link)\n"
                "print('prefix', os.environ['JUPYTERHUB_SERVICE_PREFIX'])",
                "import urllib.request\n"
                "port = cluster.dashboard_link.split('/proxy/')[1].split('/')[0]\n"
                "html = urllib.request.urlopen(f'http://127.0.0.1:{port}/status').read()\n"
                "print('local-dashboard', len(html) > 0)",
                "client.close()\ncluster.close()",
            ]
        )
    ],
}


def _outputs(notebook: dict) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


def _line(text: str, key: str) -> str:
    return next(line.split(" ", 1)[1] for line in text.splitlines() if line.startswith(key + " "))


def _end_time(job_id: str) -> int:
    out = squeue_active(["-j", job_id, "-o", "%e"])
    return int(
        subprocess.run(["date", "-d", out, "+%s"], capture_output=True, text=True).stdout.strip()
    )


@pytest.mark.timeout(900)  # a spawn (90 s) and nbclient's run (up to 420 s) may add up
def test_slurmcluster_with_no_arguments_through_the_hub(hub, session):
    user = "demo02"
    session(user)
    token = hub.user_token(user)
    put = proxied(
        hub,
        user,
        "api/contents/factorylab-dask-test.ipynb",
        token,
        method="PUT",
        json={"type": "notebook", "format": "json", "content": NOTEBOOK},
    )
    assert put.status_code in (200, 201), put.text
    report = execute_notebook(hub, user, token, "factorylab-dask-test.ipynb")
    assert report["returncode"] == 0, report["stderr"]
    executed = proxied(hub, user, "api/contents/factorylab-dask-test.ipynb", token).json()
    text = _outputs(executed["content"])

    # the job script SLURMCluster() wrote from the session's configuration alone
    assert "#SBATCH -J dask-demo02-default" in text
    assert "#SBATCH -p cpu" in text and "#SBATCH -t 01:00:00" in text
    assert "#SBATCH --time-min=00:05:00" in text and "#SBATCH --deadline=" in text
    # workers run the kernel's own environment
    assert re.search(
        r"/opt/factorylab/envs/base/bin/python3?(\.\d+)? -m distributed.cli.dask_worker", text
    )
    assert "--comment=factorylab-dask:demo02:default" in text
    # two workers, each a real Slurm job, computed the right answer
    assert _line(text, "workers") == "2"
    assert len(_line(text, "jobs").split()) == 2
    assert _line(text, "total") == str(2_000_000 * 1_999_999 // 2)
    # the dashboard link goes through the hub, and answers there
    link = _line(text, "dashboard")
    assert link.startswith(f"/user/{user}/proxy/") and link.endswith("/status"), link
    assert _line(text, "local-dashboard") == "True"


def test_dashboard_and_sidebar_cluster_through_the_hub(hub, session):
    """The Lab sidebar's "+" (dask-labextension) makes the site's SLURMCluster."""
    user = "demo03"
    session(user)
    token = hub.user_token(user)
    created = proxied(hub, user, "dask/clusters", token, method="PUT")
    assert created.status_code == 200, created.text
    cluster = created.json()
    try:
        link = cluster["dashboard_link"]
        assert link.startswith(f"/user/{user}/proxy/") and link.endswith("/status"), link
        page = proxied(hub, user, link.split(f"/user/{user}/", 1)[1], token)
        assert page.status_code == 200 and "Dask" in page.text
        scaled = proxied(
            hub, user, f"dask/clusters/{cluster['id']}", token, method="PATCH", json={"workers": 1}
        )
        assert scaled.status_code == 200, scaled.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not squeue_active(["-n", f"dask-{user}-default"]):
            time.sleep(1)
        assert squeue_active(["-n", f"dask-{user}-default", "-u", user])
    finally:
        proxied(hub, user, f"dask/clusters/{cluster['id']}", token, method="DELETE")


KEEP_WORKERS = """
from dask_jobqueue import SLURMCluster
from distributed import Client
cluster = SLURMCluster()
cluster.scale(2)
Client(cluster).wait_for_workers(2, timeout=240)
print(" ".join(sorted(job.job_id for job in cluster.workers.values())))
"""


def test_workers_end_with_the_session(hub, session):
    """Stopping the server cancels its workers, even when the kernel could not."""
    user = "demo04"
    session(user)
    token = hub.user_token(user)
    session_job = squeue_active(["-u", user, "-n", "factorylab", "-o", "%i"])
    response = proxied(hub, user, "api/kernels", token, method="POST", json={"name": "python3"})
    kernel_id = response.json()["id"]
    # a kernel that keeps its cluster after the code ran
    jobs = run_in_kernel(hub, user, token, KEEP_WORKERS, timeout=300, kernel_id=kernel_id).split()
    assert len(jobs) == 2
    # each worker's limit ends no later than the session's
    for job in jobs:
        assert _end_time(job) <= _end_time(session_job)
    # kill every kernel of the session hard, so dask-jobqueue cannot clean up itself
    subprocess.run(["pkill", "-KILL", "-u", user, "-f", "ipykernel_launcher"], check=False)
    assert squeue_active(["-j", ",".join(jobs), "-t", "RUNNING"])  # the workers outlived it
    started = time.monotonic()
    hub.stop(user)
    # within one poll interval (the workers' own death-timeout is 60 s)
    while squeue_active(["-u", user, "-n", f"dask-{user}-default"]):
        assert time.monotonic() - started < 10, "worker jobs outlived the session"
        time.sleep(0.5)
