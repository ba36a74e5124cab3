"""One real spawn end to end: hub API → Slurm job as the user → proxy → JupyterLab."""

import json
import os
import pwd
import re
import subprocess
import time

from spawners.session.job import SIGNATURE_PREFIX

from ..support.hub import job_id_of, proxied, run_in_kernel, sdiag_count, squeue_active


def test_cpu_session_runs_as_the_user_behind_the_proxy(hub, session):
    user = "demo31"
    session(user, {"partition": "cpu"})
    token = hub.user_token(user)
    status = proxied(hub, user, "api/status", token)
    assert status.status_code == 200, status.text
    assert "started" in status.json()

    job = job_id_of(user)
    assert squeue_active(["-j", job, "-o", "%u %P %T"]) == f"{user} cpu RUNNING"

    name = f"made-by-session-{time.time_ns()}.txt"
    created = proxied(
        hub,
        user,
        f"api/contents/{name}",
        token,
        method="PUT",
        json={"type": "file", "format": "text", "content": "hello"},
    )
    assert created.status_code == 201, created.text
    account = pwd.getpwnam(user)
    path = os.path.join(account.pw_dir, name)
    try:
        assert os.stat(path).st_uid == account.pw_uid
    finally:
        os.unlink(path)

    gpus = run_in_kernel(
        hub, user, token, "import os; print(os.environ.get('CUDA_VISIBLE_DEVICES'))"
    )
    assert gpus.strip() == "None"


def test_gpu_session_sees_exactly_one_gpu(hub, session):
    user = "demo32"
    session(user, {"partition": "gpu", "gpus": 1})
    token = hub.user_token(user)
    assert proxied(hub, user, "api/status", token).status_code == 200
    seen = run_in_kernel(
        hub,
        user,
        token,
        "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['SLURM_JOB_GPUS'],"
        " os.environ['SLURM_JOB_PARTITION'])",
    )
    visible, job_gpus, partition = seen.split()
    assert len(visible.split(",")) == 1 and len(job_gpus.split(",")) == 1
    assert partition == "gpu"


def test_stopping_removes_the_job_within_ten_seconds(hub, session):
    user = "demo33"
    hub.start(user, {"partition": "cpu"})
    job = job_id_of(user)
    began = time.monotonic()
    hub.stop(user)
    while squeue_active(["-j", job]) and time.monotonic() - began < 10:
        time.sleep(0.2)
    assert squeue_active(["-j", job]) == "", f"job {job} still in squeue after 10 s"


def test_refused_options_submit_nothing(hub):
    user = "demo34"
    before = sdiag_count("REQUEST_SUBMIT_BATCH_JOB")
    for options, words in [
        ({"partition": "gpu", "gpus": 9}, "gpus: 9 is outside"),
        ({"partition": "cpu\n#SBATCH --account=root"}, "control characters"),
        ({"account": "someone-else"}, "not one of your accounts"),
        ({"qos": "high"}, "not a session option"),
    ]:
        response = hub.spawn(user, options)
        assert response.status_code == 400, response.text
        assert words in response.json()["message"]
    assert sdiag_count("REQUEST_SUBMIT_BATCH_JOB") == before
    assert hub.server(user) is None

    # A plain Start afterwards is not a replay of the refused choice.
    hub.start(user)
    assert squeue_active(["-u", user, "-o", "%P"]) == "cpu"
    hub.stop(user)


def test_job_script_command_prints_the_script_sbatch_received(hub, session, tmp_path):
    """``factorylab job-script`` shows an admin what a request submits: the same script
    Slurm stored for the real spawn, less what JupyterHub adds at spawn time (its own
    variables with the server's token, its server arguments) and the hub's signature."""
    user, options = "demo33", {"partition": "cpu", "cpus": 2, "memory": "3G"}
    session(user, options)
    job = job_id_of(user)
    stored = tmp_path / "stored.sh"
    subprocess.run(["scontrol", "write", "batch_script", job, str(stored)], check=True)
    printed = subprocess.run(
        [
            "/opt/factorylab/hub/bin/factorylab",
            "job-script",
            "/etc/factorylab/site.yaml",
            "--user",
            user,
            "--options",
            json.dumps(options),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def without_hub_parts(script: str) -> list[str]:
        lines = []
        for line in script.splitlines():
            if re.match(r"export (JUPYTERHUB_\w+|JPY_API_TOKEN|LANG|LC_ALL)=", line):
                continue
            if line.startswith(SIGNATURE_PREFIX):
                continue
            lines.append(re.sub(r" --SingleUserNotebookApp\.default_url=\S+", "", line))
        return lines

    submitted = stored.read_text()
    token_line = "\nexport JUPYTERHUB_API_TOKEN="
    assert token_line in submitted and SIGNATURE_PREFIX in submitted
    assert token_line not in printed and SIGNATURE_PREFIX not in printed
    assert without_hub_parts(printed) == without_hub_parts(submitted)
    assert "#SBATCH --cpus-per-task=2" in printed and "#SBATCH --mem=3G" in printed
