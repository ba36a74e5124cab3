"""bench/memory.py and bench/extensions.py: what they read from /proc and the env."""

import json
import os
import subprocess

from bench.cpu import own_cpu
from bench.extensions import enabled_extensions
from bench.memory import job_pids, pss_mib, pss_of_job


def test_a_jobs_processes_and_their_pss():
    job = f"bench-test-{os.getpid()}"  # what Slurm puts in every process of a job
    with subprocess.Popen(["sleep", "30"], env={"SLURM_JOB_ID": job}) as sleeper:
        try:
            assert job_pids(job) == [sleeper.pid]
            assert job_pids(job + "0") == []  # another job's number is not a prefix match
            pss, by_command = pss_of_job(job)
            assert list(by_command) == ["sleep 30"] and 0 < pss < 10
            assert pss == round(pss_mib(sleeper.pid), 1)
        finally:
            sleeper.kill()


def test_own_cpu_seconds_grow_with_work():
    before = own_cpu(os.getpid())[0]
    sum(i * i for i in range(2_000_000))
    assert own_cpu(os.getpid())[0] > before


def test_enabled_extensions_read_the_envs_config(tmp_path):
    config = tmp_path / "etc/jupyter/jupyter_server_config.d"
    config.mkdir(parents=True)
    for name, on in {"jupyterlab": True, "dask_labextension": True, "off_one": False}.items():
        body = {"ServerApp": {"jpserver_extensions": {name: on}}}
        (config / f"{name}.json").write_text(json.dumps(body))
    assert enabled_extensions(tmp_path) == ["dask_labextension"]
