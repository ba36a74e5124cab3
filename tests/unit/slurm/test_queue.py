import asyncio

import pytest

from spawners.slurm.client import SlurmError
from spawners.slurm.jobs import SlurmJob
from spawners.slurm.queue import JobMonitor


def _job(job_id, state="RUNNING", name="factorylab", priority=0, submitted=1, partition="cpu"):
    return SlurmJob(
        job_id,
        name,
        "demo01",
        state,
        "None",
        partition,
        "node1",
        "node1",
        0,
        submitted,
        2,
        0,
        60,
        "",
        priority=priority,
    )


class FakeClient:
    def __init__(self):
        self.calls = 0
        self.jobs = [_job("1"), _job("2", name="other")]
        self.fail = False
        self.cancelled = []

    async def cancel(self, job_id, user):
        self.cancelled.append((job_id, user))

    async def queue(self):
        self.calls += 1
        await asyncio.sleep(0.05)
        if self.fail:
            raise SlurmError("Unable to contact slurm controller", transient=True)
        return list(self.jobs)


@pytest.fixture
async def monitor():
    client = FakeClient()
    mon = JobMonitor(client, "factorylab", active_interval=0.1, steady_interval=60, max_backoff=0.4)
    yield mon
    await mon.close()


async def test_filters_to_our_job_name(monitor):
    snapshot = await monitor.current_snapshot()
    assert set(snapshot.jobs) == {"1"}


async def test_forty_concurrent_readers_share_one_query(monitor):
    await monitor.current_snapshot()
    before = monitor.client.calls
    snapshots = await asyncio.gather(*(monitor.fresh_snapshot() for _ in range(40)))
    assert monitor.client.calls - before <= 2
    assert len({id(s) for s in snapshots}) <= 2


async def test_steady_state_does_not_poll(monitor):
    await monitor.current_snapshot()
    calls = monitor.client.calls
    await asyncio.sleep(0.5)
    assert monitor.client.calls == calls  # steady interval is 60 s


async def test_starting_jobs_poll_fast(monitor):
    await monitor.current_snapshot()
    monitor.mark_starting("1")
    calls = monitor.client.calls
    await asyncio.sleep(0.6)
    assert monitor.client.calls - calls >= 3
    monitor.mark_settled("1")
    assert monitor.interval == 60


async def test_a_watched_job_polls_fast_for_its_window_once(monitor):
    await monitor.current_snapshot()
    assert monitor.watch("1", 0.4)
    calls = monitor.client.calls
    await asyncio.sleep(0.35)
    assert monitor.client.calls - calls >= 2 and monitor.interval == 0.1
    await asyncio.sleep(0.3)
    assert monitor.interval == 60  # the window is over
    assert not monitor.watch("1", 0.4)  # one watch per job
    assert monitor.interval == 60


async def test_a_watch_ends_when_its_job_leaves_the_queue(monitor):
    await monitor.current_snapshot()
    monitor.watch("1", 30)
    assert monitor.interval == 0.1
    monitor.client.jobs = []
    await monitor.fresh_snapshot()
    assert monitor.interval == 60


async def test_wait_ended_says_whether_the_job_left_the_queue_in_time(monitor):
    await monitor.current_snapshot()
    assert not await monitor.wait_ended("1", 0.3)  # still running
    monitor.client.jobs = [_job("1", state="CANCELLED")]
    assert await monitor.wait_ended("1", 2)
    monitor.client.jobs = []
    assert await monitor.wait_ended("1", 2)


async def test_errors_keep_the_last_snapshot_and_back_off(monitor):
    first = await monitor.current_snapshot()
    monitor.client.fail = True
    monitor.mark_starting("1")
    await asyncio.sleep(1.0)
    assert not monitor.healthy and monitor.snapshot is first
    assert monitor.client.calls < 12  # backoff: 0.2, 0.4, 0.4 … not every 0.1 s
    monitor.client.fail = False
    await monitor.fresh_snapshot(timeout=3)
    assert monitor.healthy


async def test_queue_position_counts_every_pending_job_of_the_partition(monitor):
    monitor.client.jobs = [
        _job("10", "PENDING", name="someone-elses", priority=100, submitted=5),
        _job("11", "PENDING", priority=50, submitted=1),
        _job("12", "PENDING", priority=50, submitted=2),
        _job("13", "PENDING", priority=999, partition="gpu"),
        _job("14", "RUNNING"),
    ]
    snapshot = await monitor.fresh_snapshot()
    assert snapshot.queue_position("11") == 2  # behind the higher-priority job 10
    assert snapshot.queue_position("12") == 3  # same priority, submitted later
    assert snapshot.queue_position("14") is None
    assert "10" not in snapshot.jobs  # not ours, but it counts for the position


async def test_unclaimed_jobs_are_cancelled_after_the_grace(monitor):
    monitor.client.jobs = [_job("21"), _job("22"), _job("23", "COMPLETED")]
    monitor.claim("21")
    monitor.orphan_grace = 0.3
    snapshot = await monitor.fresh_snapshot()
    assert await monitor.reconcile_orphans(snapshot) == []  # first seen now
    await asyncio.sleep(0.35)
    assert await monitor.reconcile_orphans(snapshot) == ["22"]
    assert monitor.client.cancelled == [("22", "demo01")]


async def test_orphans_are_left_alone_without_a_grace(monitor):
    monitor.client.jobs = [_job("31")]
    snapshot = await monitor.fresh_snapshot()
    assert await monitor.reconcile_orphans(snapshot) == []


async def test_kernel_jobs_are_kept_apart_and_are_no_orphans(monitor):
    monitor.client.jobs = [
        _job("41"),
        _job("42", "PENDING", name="factorylab-kernel-41", partition="gpu"),
        _job("43", name="factorylab-kernelish"),
    ]
    monitor.claim("41")
    monitor.orphan_grace = 0.0
    snapshot = await monitor.fresh_snapshot()
    assert set(snapshot.jobs) == {"41"} and set(snapshot.kernels) == {"42"}
    assert snapshot.queue_position("42") == 1
    assert await monitor.reconcile_orphans(snapshot) == []


async def test_a_kernel_job_kept_fresh_polls_fast_until_nobody_asks(monitor):
    monitor.client.jobs = [_job("51", "PENDING", name="factorylab-kernel-50")]
    await monitor.fresh_snapshot()
    monitor.keep_fresh("51", 0.3)
    assert monitor.interval == 0.1
    monitor.keep_fresh("51", 0.3)  # renewed by every ask, unlike watch()
    await asyncio.sleep(0.4)
    assert monitor.interval == 60
