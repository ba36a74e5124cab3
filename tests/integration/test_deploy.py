"""What `make up` leaves behind: idempotent, least-privileged, documented secrets."""

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from ..unit.conftest import REPO


def _as_hub(*argv):
    return subprocess.run(
        ["runuser", "-u", "factorylab", "--", *argv], capture_output=True, text=True, timeout=30
    )


def test_second_make_up_changes_nothing():
    # Issue 14, 5: the hub's account wrote `x;touch /root/…` into the token file in its
    # state directory, and the next `make up` ran it as root. Nothing there is read now.
    proof = Path("/root/factorylab-pwned")
    proof.unlink(missing_ok=True)
    planted = _as_hub("sh", "-c", f"printf 'x;touch {proof}' > /var/lib/factorylab/admin-api.token")
    assert planted.returncode == 0, planted.stderr
    result = subprocess.run(
        ["make", "-s", "up"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    recap = re.search(
        r"localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", result.stdout
    )
    assert recap, result.stdout[-2000:]
    changed = [line for line in result.stdout.splitlines() if line.startswith("changed:")]
    assert recap.group(1) == "0", "\n".join(changed)
    assert "FactoryLab is up: http://127.0.0.1:8000" in result.stdout
    assert "demo01" in result.stdout
    assert not proof.exists(), "make up ran what the hub's account wrote"
    Path("/var/lib/factorylab/admin-api.token").unlink()


@pytest.fixture(autouse=True)
def _hub_answers(hub):
    yield
    hub.wait_until_up()  # make up may have restarted it


def test_hub_and_proxy_do_not_run_as_root():
    for name in ("hub", "proxy"):
        pid = int(Path(f"/run/factorylab/{name}.pid").read_text())
        assert os.stat(f"/proc/{pid}").st_uid == int(
            subprocess.check_output(["id", "-u", "factorylab"]).strip()
        ), name


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["sudo", "-n", "-u", "demo01", "/usr/bin/sbatch", "--version"], True),
        (["sudo", "-n", "-u", "demo01", "/usr/bin/scancel", "--version"], True),
        # the hub reads the queue as itself; as a user it could read their job scripts
        (["sudo", "-n", "-u", "demo01", "/usr/bin/squeue", "-h", "-u", "nobody"], False),
        (["sudo", "-n", "-u", "demo01", "/usr/bin/scontrol", "write", "batch_script", "1"], False),
        (["sudo", "-n", "-u", "demo01", "/bin/true"], False),
        (["sudo", "-n", "-u", "demo01", "/bin/bash", "-c", "id"], False),
        (["sudo", "-n", "-u", "root", "/usr/bin/squeue"], False),
        (["sudo", "-n", "/usr/bin/scontrol", "show", "config"], False),
        (["sudo", "-n", "-u", "factorylab", "/usr/bin/squeue"], False),
        (["sudo", "-n", "-E", "-u", "demo01", "/usr/bin/squeue"], False),
        (["sudo", "-n", "-u", "demo01", "/usr/bin/sinfo"], False),  # not a verb it needs
        (["sudo", "-n", "-u", "nobody", "/usr/bin/squeue"], False),  # not a FactoryLab user
        (["sudo", "-n", "-u", "slurm", "/usr/bin/scontrol", "show", "config"], False),
        (["sudo", "-n", "-u", "slurm", "/bin/true"], False),
        (["sudo", "-n", "-u", "root", "/usr/local/sbin/factorylab-extend", "1", "60"], False),
        (["sudo", "-n", "-i"], False),
        (["sudo", "-n", "-s"], False),
    ],
)
def test_hub_may_only_run_slurm_verbs_as_users(argv, allowed):
    result = _as_hub(*argv)
    if allowed:
        assert result.returncode == 0, (argv, result.stderr)
    else:  # refused by sudo itself, not merely failed once run
        refused = ("a password is required", "is not allowed to execute")
        assert result.returncode != 0 and any(words in result.stderr for words in refused), (
            argv,
            result.stderr,
        )


def test_the_hub_may_run_nothing_as_root():
    listing = _as_hub("sudo", "-n", "-l")
    assert listing.returncode == 0, listing.stderr
    rules = listing.stdout.split("may run the following commands", 1)[1]
    runas = set(re.findall(r"^\s*\(([^)]*)\)", rules, re.MULTILINE))
    assert runas == {"%factorylab-users", "slurm"}, rules
    assert "root" not in rules.replace("/usr/local/sbin", "")


def test_the_operator_command_is_the_extend_helper_and_it_checks_the_job():
    helper = "/usr/local/sbin/factorylab-extend"
    # allowed by sudo as SlurmUser, then refused by the helper: job 1 is no session
    result = _as_hub("sudo", "-n", "-u", "slurm", helper, "1", "60")
    assert result.returncode == 1 and "is not a running session" in result.stderr
    result = _as_hub("sudo", "-n", "-u", "slurm", helper, "1;id", "60")
    assert result.returncode == 1 and "usage" in result.stderr
    result = _as_hub("sudo", "-n", "/usr/bin/scontrol", "update", "JobId=1", "TimeLimit=60")
    assert result.returncode != 0 and "password is required" in result.stderr
    assert oct(Path(helper).stat().st_mode & 0o777) == "0o755" and Path(helper).owner() == "root"


def test_the_extend_helper_refuses_a_job_the_hub_did_not_submit():
    """A user can name and label their own job like a session; it has no hub signature."""
    job = subprocess.run(
        [
            "runuser",
            "-u",
            "demo05",
            "--",
            "sbatch",
            "--parsable",
            "--output=/dev/null",
            "--job-name=factorylab",
            "--comment=factorylab:demo05:default",
            "-p",
            "cpu",
            "--mem=100M",
            "-t",
            "10",
            "--wrap",
            "sleep 300",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    try:
        for _ in range(60):
            state = subprocess.run(
                ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True
            ).stdout.strip()
            if state == "RUNNING":
                break
            time.sleep(0.5)
        helper = "/usr/local/sbin/factorylab-extend"
        result = _as_hub("sudo", "-n", "-u", "slurm", helper, job, "100000")
        assert "beyond the longest session of partition cpu (480)" in result.stderr
        result = _as_hub("sudo", "-n", "-u", "slurm", helper, job, "20")
        assert result.returncode == 1 and "was not submitted by the hub" in result.stderr, (
            result.stderr
        )
        limit = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%l"], capture_output=True, text=True
        ).stdout.strip()
        assert limit == "10:00", limit
    finally:
        subprocess.run(["scancel", job], check=False)


def test_slurmctld_runs_as_slurm_user_not_root():
    pid = int(Path("/run/slurmctld.pid").read_text())
    assert Path(f"/proc/{pid}").owner() == "slurm"
    state = Path("/var/lib/slurm/slurmctld")  # job scripts: internal-SSL keys, Dask config
    assert state.owner() == "slurm" and stat.S_IMODE(state.stat().st_mode) == 0o700
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
    assert re.search(r"^SlurmUser\s*=\s*slurm\(", config.stdout, re.MULTILINE), config.stdout


def test_secrets_are_root_only_and_out_of_the_hubs_reach():
    for path in ("/etc/factorylab/admin-api.token", "/etc/factorylab/proxy.token"):
        info = os.stat(path)
        assert info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0o600, path
        assert _as_hub("cat", path).returncode != 0
    signing = os.stat("/etc/factorylab/session-signing.key")
    assert signing.st_uid == 0 and stat.S_IMODE(signing.st_mode) == 0o640
    assert _as_hub("touch", "/etc/factorylab/x").returncode != 0


def test_admin_token_has_exactly_the_automation_scopes(hub):
    model = hub.api("GET", "/user").json()
    assert model["kind"] == "service" and model["name"] == "factorylab-admin"
    scopes = set(model["scopes"])
    assert {"admin:users", "admin:servers", "tokens"} <= {s.split("!")[0] for s in scopes} | scopes
    assert "admin-ui" not in scopes and "shutdown" not in scopes
