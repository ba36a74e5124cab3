import asyncio
import socket

import pytest

from spawners.hub.liveness import answers, watch_if_silent
from spawners.slurm.queue import JobMonitor
from tests.unit.slurm.test_queue import FakeClient, _job


@pytest.fixture
async def listening():
    """A real server on loopback, and a port nothing listens on."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed_port = spare.getsockname()[1]
    yield server.sockets[0].getsockname()[1], closed_port
    server.close()
    await server.wait_closed()


@pytest.fixture
async def monitor():
    mon = JobMonitor(FakeClient(), "factorylab", active_interval=0.1, steady_interval=60)
    yield mon
    await mon.close()


async def test_answers_tells_a_listening_port_from_a_closed_one(listening):
    open_port, closed_port = listening
    assert await answers("127.0.0.1", open_port)
    assert not await answers("127.0.0.1", closed_port)


async def test_a_silent_address_times_out_quickly():
    # TEST-NET-1 (RFC 5737) is never routed: the connection neither succeeds nor is refused
    started = asyncio.get_running_loop().time()
    assert not await answers("192.0.2.1", 9, timeout=0.3)
    assert asyncio.get_running_loop().time() - started < 2


async def test_a_running_session_that_answers_starts_no_watch(monitor, listening):
    open_port, _ = listening
    assert not await watch_if_silent(monitor, _job("1"), "127.0.0.1", open_port, 90)
    assert monitor.interval == 60


async def test_a_silent_running_session_starts_one_fast_watch(monitor, listening):
    _, closed_port = listening
    assert await watch_if_silent(monitor, _job("1"), "127.0.0.1", closed_port, 90)
    assert monitor.interval == 0.1
    assert not await watch_if_silent(monitor, _job("1"), "127.0.0.1", closed_port, 90)


@pytest.mark.parametrize(
    "job, host, port, seconds",
    [
        (_job("1", state="PENDING"), "127.0.0.1", 1, 90),  # not running yet
        (_job("1"), "", 1, 90),  # address unknown (after a hub restart, say)
        (_job("1"), "127.0.0.1", 0, 90),
        (_job("1"), "127.0.0.1", 1, 0),  # the site turned watches off
    ],
)
async def test_no_watch_without_a_running_job_an_address_and_a_window(
    monitor, job, host, port, seconds
):
    assert not await watch_if_silent(monitor, job, host, port, seconds)
    assert not monitor.was_watched("1")
