"""Sessions that end outside the hub, scheduler outages, and orphan jobs."""

import pwd
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import requests
import yaml

from ..support.hub import (
    HUB_URL,
    SITE_FILE,
    hub_log_mark,
    hub_log_since,
    job_id_of,
    next_page_says,
    proxied,
    sbatch_as,
    spawn_failure,
    squeue_active,
    wait_gone,
)
from ..support.services import service

# Site file (demo): squeue every 20 s when steady, poll() every 5 s, orphans after 20 s.
NOTICE_WITHIN = 20 + 5 + 5
ORPHAN_GRACE = yaml.safe_load(SITE_FILE.read_text())["slurm"]["orphan_grace"]


def test_scancel_by_an_admin_is_noticed_and_explained(hub, session):
    user = "demo27"
    session(user, {"partition": "cpu"})
    subprocess.run(["scancel", job_id_of(user)], check=True)
    began = time.monotonic()
    assert wait_gone(hub, user, NOTICE_WITHIN + 10), "the hub still shows the server"
    assert time.monotonic() - began <= NOTICE_WITHIN
    next_page_says(user, "cancelled outside FactoryLab")


def test_walltime_expiry_is_noticed_and_explained(hub, session):
    user = "demo26"
    session(user, {"partition": "cpu", "walltime": "00:01:00"})
    # Slurm enforces limits on a ~30 s sweep, then the hub notices within one interval.
    assert wait_gone(hub, user, 60 + 35 + NOTICE_WITHIN + 10)
    next_page_says(user, "reached its time limit of 00:01:00")


def test_slurmctld_outage_keeps_sessions_and_leaves_no_orphan(hub, session):
    users = [f"demo{n:02d}" for n in range(21, 26)]
    hub.stop("demo20")  # a leftover of an interrupted run must not decide this test
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(lambda u: session(u, {"partition": "cpu"}), users))
    tokens = {user: hub.user_token(user) for user in users}
    for user in users:  # like open tabs: each session has seen its token
        assert proxied(hub, user, "api/status", tokens[user]).status_code == 200

    service("stop", "slurmctld", check=True)
    outage_began = time.monotonic()
    try:
        # sbatch (and the form's sinfo) retry for ~9 s each before they give up
        message = spawn_failure(hub, "demo20", hub.spawn("demo20", {"partition": "cpu"}))
        assert "scheduler is not answering" in message, message
        time.sleep(max(0, 60 - (time.monotonic() - outage_began)))
        for user in users:
            server = hub.server(user)
            assert server and server["ready"], f"{user} was dropped during the outage"
            assert proxied(hub, user, "api/status", tokens[user]).status_code == 200
    finally:
        service("start", "slurmctld", check=True)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ok = subprocess.run(["scontrol", "ping"], capture_output=True).returncode == 0
        if ok:
            break
        time.sleep(1)
    time.sleep(NOTICE_WITHIN)  # the hub polls again with the controller back
    for user in users:
        assert hub.server(user)["ready"]
        assert proxied(hub, user, "api/status", tokens[user]).status_code == 200
    assert squeue_active(["-u", "demo20"]) == "", "the refused spawn left a job"
    assert hub.server("demo20") is None


def _accounting(job: str, timeout: float = 30) -> dict[str, str]:
    """The job's final sacct record (slurmdbd gets it a moment after the job ends)."""
    fields = ("State", "Submit", "End", "ExitCode")
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", job, "-o", ",".join(fields)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        record = dict(zip(fields, out.splitlines()[0].split("|"), strict=True)) if out else {}
        if (record and record["End"] not in ("", "Unknown")) or time.monotonic() >= deadline:
            return record
        time.sleep(1)


def test_an_orphan_factorylab_job_is_cancelled_after_the_grace():
    user = "demo19"
    mark = hub_log_mark()
    job = sbatch_as(user, "--job-name=factorylab")
    try:
        deadline = time.monotonic() + 20 + 2 * NOTICE_WITHIN
        while squeue_active(["-j", job]) and time.monotonic() < deadline:
            time.sleep(1)
        assert squeue_active(["-j", job]) == "", "the orphan job still runs"
    finally:
        subprocess.run(["scancel", job], check=False)  # as root: sacct would say "by 0"
    # ended because the hub cancelled it: scancel run as the job's user (the hub's sudo
    # rule), not a timeout, a failure, or this test's cleanup as root
    record = _accounting(job)
    uid = pwd.getpwnam(user).pw_uid
    assert record.get("State") == f"CANCELLED by {uid}", record
    waited = datetime.fromisoformat(record["End"]) - datetime.fromisoformat(record["Submit"])
    assert waited.total_seconds() >= ORPHAN_GRACE, f"cancelled before the grace: {record}"
    cancelled = f"Cancelling orphan job {job} of {user}"
    assert cancelled in hub_log_since(mark, cancelled), "the hub's log does not say it did"
    assert requests.get(f"{HUB_URL}/hub/api/", timeout=10).status_code == 200
