"""The Slurm spawner's stop and poll paths end a session's Dask workers too."""

import time
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from spawners.job_monitor import Snapshot
from spawners.slurm import SlurmSpawner

from .conftest import REPO

SITE = str(REPO / "hub_config" / "site.local.yaml")


class FakeSlurm:
    def __init__(self):
        self.calls = []

    async def cancel(self, job_id, user):
        self.calls.append(("cancel", job_id, user))

    async def cancel_named(self, name, user):
        self.calls.append(("cancel_named", name, user))


class FakeMonitor:
    healthy = True

    def __init__(self, jobs):
        self.snapshot = Snapshot(jobs=jobs, taken_at=time.monotonic(), taken_wall=time.time())

    async def current_snapshot(self, timeout):
        return self.snapshot

    async def fresh_snapshot(self, timeout=None, newer_than=None):
        return self.snapshot

    def claim(self, job_id):
        pass

    def release(self, job_id):
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


async def test_stop_cancels_the_session_and_its_workers(spawner):
    spawner, slurm = spawner
    await spawner.stop()
    assert slurm.calls == [
        ("cancel", "12", "demo01"),
        ("cancel_named", "dask-demo01-run1", "demo01"),
    ]


async def test_a_job_that_ended_on_its_own_takes_its_workers_along(spawner):
    # JupyterHub does not call stop() for a server whose poll says it ended.
    spawner, slurm = spawner
    assert await spawner.poll() == 1
    assert await spawner.poll() == 1
    assert slurm.calls == [("cancel_named", "dask-demo01-run1", "demo01")]  # once
