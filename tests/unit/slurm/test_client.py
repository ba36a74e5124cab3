"""SlurmClient against fake Slurm commands (scripts in a temporary bin directory)."""

import json
import os
import stat
import time
from pathlib import Path

import pytest

from spawners.slurm.client import KILL_GRACE, SlurmClient, SlurmError
from spawners.slurm.jobs import SlurmJob

FIXTURE = Path(__file__).parent / "fixtures" / "squeue-22.05.json"


def _script(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_bin(tmp_path):
    # A fake sudo that records its arguments and runs the command after "--".
    _script(
        tmp_path, "sudo", 'printf "%s " "$@" >> "$(dirname "$0")/sudo.log"\nshift 4\nexec "$@"\n'
    )
    return tmp_path


def _client(fake_bin, timeout=5):
    return SlurmClient(bin_dir=str(fake_bin), sudo=str(fake_bin / "sudo"), timeout=timeout)


async def test_submit_runs_sbatch_as_user_without_a_shell(fake_bin):
    _script(fake_bin, "sbatch", 'cat > "$(dirname "$0")/script.txt"\necho "42;cluster"\n')
    job_id = await _client(fake_bin).submit("#!/bin/bash\necho hi\n", "demo01")
    assert job_id == "42"
    assert (fake_bin / "script.txt").read_text() == "#!/bin/bash\necho hi\n"
    assert (fake_bin / "sudo.log").read_text().split()[:4] == ["-n", "-u", "demo01", "--"]


@pytest.mark.parametrize("user", ["root;id", "-u", "demo01 --", "$(id)", ""])
async def test_refuses_odd_user_names(fake_bin, user):
    with pytest.raises(SlurmError, match="user name"):
        await _client(fake_bin).submit("x", user)


async def test_sbatch_errors_are_reported(fake_bin):
    _script(
        fake_bin, "sbatch", 'echo "sbatch: error: invalid partition specified: x" >&2\nexit 1\n'
    )
    with pytest.raises(SlurmError, match="invalid partition") as info:
        await _client(fake_bin).submit("x", "demo01")
    assert not info.value.transient


async def test_controller_outage_is_transient(fake_bin):
    _script(
        fake_bin,
        "squeue",
        'echo "slurm_load_jobs error: Unable to contact slurm controller" >&2\nexit 1\n',
    )
    with pytest.raises(SlurmError) as info:
        await _client(fake_bin).queue()
    assert info.value.transient


async def test_timeouts_are_transient(fake_bin):
    _script(fake_bin, "squeue", "sleep 5\n")
    with pytest.raises(SlurmError, match="did not answer") as info:
        await _client(fake_bin, timeout=0.3).queue()
    assert info.value.transient


async def test_the_timeout_holds_when_the_command_forks(fake_bin):
    """sudo forks the real command: a hung sbatch below it must not outlast the timeout."""
    # A child that ignores SIGTERM and keeps the pipes open, under a parent that forwards
    # nothing (as a sudo that cannot relay SIGKILL).
    _script(fake_bin, "sbatch", "trap '' TERM\nsleep 30 &\nwait\n")
    began = time.monotonic()
    with pytest.raises(SlurmError, match="did not answer"):
        await _client(fake_bin, timeout=0.5).submit("x", "demo01")
    elapsed = time.monotonic() - began
    assert elapsed < 0.5 + 2 * KILL_GRACE + 1, f"returned after {elapsed:.1f} s"


async def test_queue_parses_real_squeue_json(fake_bin):
    _script(fake_bin, "squeue", f'cat "{FIXTURE}"\n')
    jobs = {job.job_id: job for job in await _client(fake_bin).queue()}
    assert (
        jobs["4"].state == "RUNNING" and jobs["4"].running and jobs["4"].batch_host == "localhost"
    )
    assert (
        jobs["2"].state == "FAILED"
        and not jobs["2"].active
        and jobs["2"].reason == "JobLaunchFailure"
    )
    assert jobs["4"].user == "demo01" and jobs["4"].partition == "gpu"


def test_a_jobs_account_is_slurms():
    assert SlurmJob.from_json({"job_id": 1, "account": "training"}).account == "training"
    assert SlurmJob.from_json({"job_id": 1}).account == ""  # no accounting database


async def test_cancel_ignores_finished_jobs(fake_bin):
    _script(
        fake_bin,
        "scancel",
        'echo "scancel: error: Kill job error on job id 7: Invalid job id specified" >&2\nexit 1\n',
    )
    await _client(fake_bin).cancel("7", "demo01")
    with pytest.raises(SlurmError, match="not a job id"):
        await _client(fake_bin).cancel("7; reboot", "demo01")


@pytest.mark.parametrize(
    ("status", "code"), [(0, 0), (256, 1), (15 << 8, 15), (9, -9), (4021, -53)]
)
def test_wait_statuses_become_exit_codes(status, code):
    assert SlurmJob.from_json({"job_id": 1, "exit_code": status}).exit_code == code


def test_newer_openapi_shapes():
    job = SlurmJob.from_json(
        {
            "job_id": 9,
            "job_state": ["RUNNING"],
            "exit_code": {"status": "SUCCESS", "return_code": 0},
            "time_limit": {"set": True, "infinite": False, "number": 60},
            "start_time": {"set": True, "number": 100},
        }
    )
    assert (job.state, job.exit_code, job.time_limit_minutes, job.start_time) == (
        "RUNNING",
        0,
        60,
        100,
    )


def test_fixture_is_real_output():
    payload = json.loads(FIXTURE.read_text())
    assert payload["meta"]["Slurm"]["release"].startswith("22.05")
    assert os.path.getsize(FIXTURE) > 1000


SINFO = Path(__file__).parent / "fixtures" / "sinfo-22.05.json"


async def test_nodes_come_from_sinfo_json(fake_bin):
    _script(fake_bin, "sinfo", f'[ "$1" = --json ] && cat {SINFO}\n')
    nodes = await _client(fake_bin).nodes()
    assert nodes[0]["gres"] == "gpu:h100:4" and nodes[0]["partitions"] == ["cpu", "gpu"]


async def test_reservations_use_one_line_output(fake_bin):
    _script(fake_bin, "scontrol", 'echo "$@" > "$(dirname "$0")/args"\necho ReservationName=r\n')
    assert (await _client(fake_bin).reservations()).strip() == "ReservationName=r"
    assert (fake_bin / "args").read_text().split() == ["-o", "show", "reservation"]


async def test_associations_list_plain_account_names_only(fake_bin):
    _script(fake_bin, "sacctmgr", 'printf "proj-a\\nproj-b\\nproj-a\\nbad name;x\\n"\n')
    assert await _client(fake_bin).associations("demo01") == ["proj-a", "proj-b"]
    with pytest.raises(SlurmError):
        await _client(fake_bin).associations("root; id")


async def test_associations_without_accounting_fail(fake_bin):
    _script(
        fake_bin,
        "sacctmgr",
        "echo 'You are not running a supported accounting_storage plugin'\nexit 1\n",
    )
    with pytest.raises(SlurmError, match="accounting_storage"):
        await _client(fake_bin).associations("demo01")


async def test_cancel_named_cancels_the_users_jobs_of_that_name(fake_bin):
    _script(fake_bin, "scancel", 'echo "$@" > "$(dirname "$0")/scancel.args"\n')
    await _client(fake_bin).cancel_named("dask-demo01-default", "demo01")
    assert (fake_bin / "scancel.args").read_text().split() == [
        "--user=demo01",
        "--name=dask-demo01-default",
    ]
    assert "-u demo01 --" in (fake_bin / "sudo.log").read_text()
    with pytest.raises(SlurmError, match="not a plain job name"):
        await _client(fake_bin).cancel_named("dask-*", "demo01")


async def test_extend_runs_the_helper_as_slurms_operator_never_root(fake_bin):
    _script(fake_bin, "extend-helper", 'echo "$@" > "$(dirname "$0")/helper.txt"\n')
    client = _client(fake_bin)
    await client.extend("42", 90, helper=str(fake_bin / "extend-helper"))
    assert (fake_bin / "sudo.log").read_text().split()[:4] == ["-n", "-u", "slurm", "--"]
    assert (fake_bin / "helper.txt").read_text().split() == ["42", "90"]
    with pytest.raises(SlurmError, match="not a job id"):
        await client.extend("42;id", 90)


async def test_observers_hear_each_command_with_its_verb_and_outcome(fake_bin, monkeypatch):
    heard = []
    monkeypatch.setattr(SlurmClient, "observers", [lambda *event: heard.append(event)])
    _script(fake_bin, "sbatch", 'echo "7"\n')
    _script(fake_bin, "scancel", 'echo "scancel: error: Kill job error" >&2\nexit 1\n')
    _script(fake_bin, "squeue", "sleep 5\n")
    client = _client(fake_bin, timeout=0.5)
    await client.submit("#!/bin/bash\n", "demo01")
    with pytest.raises(SlurmError):
        await client.cancel("7", "demo01")
    with pytest.raises(SlurmError):
        await client.queue()
    assert [(verb, outcome) for verb, outcome, _ in heard] == [
        ("sbatch", "ok"),
        ("scancel", "error"),
        ("squeue", "timeout"),
    ]
    assert all(seconds >= 0 for *_, seconds in heard)
    assert heard[2][2] >= 0.5


async def test_a_broken_observer_never_fails_a_command(fake_bin, monkeypatch):
    def broken(*event):
        raise RuntimeError("metrics gone")

    monkeypatch.setattr(SlurmClient, "observers", [broken])
    _script(fake_bin, "sbatch", 'echo "8"\n')
    assert await _client(fake_bin).submit("#!/bin/bash\n", "demo01") == "8"
