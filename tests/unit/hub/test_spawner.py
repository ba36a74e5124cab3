"""The Slurm spawner's stop and poll paths end a session's Dask workers too."""

import asyncio
import time
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from spawners.hub.liveness import Liveness
from spawners.hub.spawner import SlurmSpawner
from spawners.slurm.client import SlurmError
from spawners.slurm.jobs import SlurmJob
from spawners.slurm.queue import Snapshot

from ..conftest import REPO

SITE = str(REPO / "hub_config" / "site.local.yaml")


class FakeSlurm:
    def __init__(self):
        self.calls = []

    async def cancel(self, job_id, user):
        self.calls.append(("cancel", job_id, user))

    async def cancel_named(self, name, user):
        self.calls.append(("cancel_named", name, user))

    async def extend(self, job_id, minutes):
        self.calls.append(("extend", job_id, minutes))


class FakeMonitor:
    healthy = True

    def __init__(self, jobs):
        self.snapshot = Snapshot(jobs=jobs, taken_at=time.monotonic(), taken_wall=time.time())

    async def current_snapshot(self, timeout):
        return self.snapshot

    async def fresh_snapshot(self, timeout=None, newer_than=None):
        return self.snapshot

    async def wait_ended(self, job_id, seconds):
        return True

    def claim(self, job_id):
        pass

    def release(self, job_id):
        pass

    def mark_settled(self, job_id):
        pass


@pytest.fixture
def spawner(monkeypatch):
    slurm, monitor = FakeSlurm(), FakeMonitor({})
    monkeypatch.setattr(SlurmSpawner, "monitor", property(lambda self: monitor))
    monkeypatch.setattr(SlurmSpawner, "slurm", property(lambda self: slurm))
    user = SimpleNamespace(name="demo01", url="/user/demo01/", escaped_name="demo01", id=1)
    spawner = SlurmSpawner(site_file=SITE, user=user, config=Config())
    monkeypatch.setattr(SlurmSpawner, "name", property(lambda self: "run1"))
    spawner.job_id = "12"
    spawner.submitted_at = int(time.time()) - 60
    return spawner, slurm


# A session's kernel jobs and Dask workers, by name (the demo site has kernels: and Dask)
CANCEL_NAMED = [
    ("cancel_named", "factorylab-kernel-12", "demo01"),
    ("cancel_named", "dask-demo01-run1", "demo01"),
]


async def test_stop_cancels_the_session_and_its_workers(spawner):
    spawner, slurm = spawner
    await spawner.stop()
    assert slurm.calls == [
        ("cancel", "12", "demo01"),
        *CANCEL_NAMED,
    ]


async def test_a_job_that_ended_on_its_own_takes_its_workers_along(spawner):
    # JupyterHub does not call stop() for a server whose poll says it ended.
    spawner, slurm = spawner
    assert await spawner.poll() == 1
    assert await spawner.poll() == 1
    assert slurm.calls == CANCEL_NAMED  # once


class LostWithItsNode(Liveness):
    """Knocks that find the server silent on a node Slurm has lost."""

    async def lost(self, site, monitor, job, server):
        self.lost_node = job.batch_host
        return f"Your session (Slurm job {job.job_id}) stopped because its node failed."


async def test_a_session_lost_with_its_node_is_cancelled_here_and_stays_ended(spawner):
    # JupyterHub polls again before it lets the server go, and never calls stop()
    spawner, slurm = spawner
    spawner.monitor.snapshot = Snapshot(
        jobs={"12": _job(batch_host="c01")}, taken_at=time.monotonic(), taken_wall=time.time()
    )
    spawner.liveness = LostWithItsNode()
    spawner.serves_at = "c01:40000"  # a running session said where it listens
    assert await spawner.poll() == 1
    assert await spawner.poll() == 1
    assert "its node failed" in spawner.ended_message
    assert slurm.calls == [
        ("cancel", "12", "demo01"),
        *CANCEL_NAMED,
    ]


async def test_a_start_cut_short_by_a_hub_restart_is_ended_not_waited_for(spawner):
    spawner, slurm = spawner
    # loaded from the database, its start never finished: no address, no port awaited
    spawner.monitor.snapshot = Snapshot(
        jobs={"12": _job()}, taken_at=time.monotonic(), taken_wall=time.time()
    )
    assert await spawner.poll() == 1
    assert ("cancel", "12", "demo01") in slurm.calls
    assert spawner.ended_message.startswith("Your session was still starting when the hub")


async def test_a_running_session_whose_server_answers_stays(spawner):
    spawner, slurm = spawner
    spawner.monitor.snapshot = Snapshot(
        jobs={"12": _job()}, taken_at=time.monotonic(), taken_wall=time.time()
    )
    spawner._port_future = asyncio.get_running_loop().create_future()  # it is starting
    assert await spawner.poll() is None  # no server address yet: nothing to knock on
    assert slurm.calls == [] and not spawner.liveness.lost_node


def _job(**overrides):
    values = dict(
        job_id="12",
        name="factorylab",
        user="demo01",
        state="RUNNING",
        reason="None",
        partition="cpu",
        batch_host="localhost",
        nodes="localhost",
        exit_code=None,
        submit_time=int(time.time()) - 600,
        start_time=int(time.time()) - 600,
        end_time=int(time.time()) + 240,
        time_limit_minutes=14,
        standard_output="",
    )
    values.update(overrides)
    return SlurmJob(**values)


@pytest.fixture
def running(monkeypatch):
    slurm, monitor = FakeSlurm(), FakeMonitor({"12": _job()})
    monkeypatch.setattr(SlurmSpawner, "monitor", property(lambda self: monitor))
    monkeypatch.setattr(SlurmSpawner, "slurm", property(lambda self: slurm))
    monkeypatch.setattr("spawners.hub.session_control.unix_groups", lambda user: frozenset())
    user = SimpleNamespace(name="demo01", url="/user/demo01/", escaped_name="demo01", id=1)
    spawner = SlurmSpawner(site_file=SITE, user=user, config=Config())
    spawner.job_id = "12"
    return spawner, slurm, monitor


def test_facts_give_time_left_warning_and_reach(running):
    spawner, _, _ = running
    facts = spawner.session_facts()
    assert 230 <= facts["time_left_seconds"] <= 240
    assert facts["warning"] == (
        "Your session ends in 4 minutes. Save your work, or extend the session."
    )
    job = spawner.monitor.snapshot.jobs["12"]
    assert facts["extendable_until"] == job.start_time + 8 * 3600  # cpu: 8 h in all
    assert facts["extend_by_seconds"] == 30 * 60


async def test_extend_within_policy_asks_slurm_for_the_new_limit(running):
    spawner, slurm, _ = running
    await spawner.extend(30 * 60)
    assert slurm.calls == [("extend", "12", 44)]  # 14 + 30 minutes


async def test_extend_beyond_policy_is_refused_with_the_reason(running):
    spawner, slurm, _ = running
    with pytest.raises(PermissionError, match="may run 08:00:00 in all; this one has 00:14:00"):
        await spawner.extend(8 * 3600)
    assert slurm.calls == []


async def test_slurm_refusing_is_reported(running):
    spawner, slurm, _ = running

    async def refuse(job_id, minutes):
        raise SlurmError("Job is no longer pending execution")

    slurm.extend = refuse
    with pytest.raises(RuntimeError, match="Slurm refused the extension: Job is no longer"):
        await spawner.extend(600)


def test_kernel_activity_never_moves_backwards(running):
    spawner, _, _ = running
    spawner.record_kernel_activity(1000.0)
    spawner.record_kernel_activity(900.0)
    assert spawner.kernel_activity == 1000.0 and spawner.get_state()["kernel_activity"] == 1000.0


def test_group_limits_are_looked_up_once_per_job(running, monkeypatch):
    spawner, _, _ = running
    lookups = []
    monkeypatch.setattr(
        "spawners.hub.session_control.unix_groups", lambda user: lookups.append(user) or frozenset()
    )
    for _ in range(3):
        spawner.session_facts()  # the status bar asks twice a minute
    assert lookups == ["demo01"]


def test_where_the_server_listens_survives_a_hub_restart(spawner):
    spawner, _ = spawner
    spawner.serves_at = "10.213.0.11:40123"
    state = spawner.get_state()
    assert state["serves_at"] == "10.213.0.11:40123"
    spawner.clear_state()
    assert spawner.serves_at == "" and "serves_at" not in spawner.get_state()
    spawner.load_state(state)
    assert spawner.serves_at == "10.213.0.11:40123"
