import asyncio
import socket

import pytest

from spawners.hub import liveness
from spawners.hub.liveness import Liveness, answers
from spawners.slurm.cluster import ClusterState
from spawners.slurm.queue import JobMonitor
from tests.unit.slurm.test_queue import FakeClient, _job


@pytest.fixture
async def ports():
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


class FakeCluster:
    """The shared sinfo cache, with the nodes Slurm has lost touch with."""

    def __init__(self, silent=(), error=None):
        self.state = ClusterState(silent_nodes=frozenset(silent), error=error)
        self.gets = 0

    async def get(self):
        self.gets += 1
        return self.state


@pytest.fixture
def quick_site(site):
    slurm = site.slurm.model_copy(update={"node_silence_limit": 0.3, "node_failure_watch": 30})
    return site.model_copy(update={"slurm": slurm})


def _at(port: int, host: str = "127.0.0.1") -> str:
    """Where a server listens, as the spawner keeps it."""
    return f"{host}:{port}"


def _cluster(monkeypatch, **kwargs) -> FakeCluster:
    cluster = FakeCluster(**kwargs)
    monkeypatch.setattr(liveness, "shared_cluster_state", lambda site: cluster)
    return cluster


async def test_answers_tells_a_listening_port_from_a_closed_one(ports):
    open_port, closed_port = ports
    assert await answers("127.0.0.1", open_port)
    assert not await answers("127.0.0.1", closed_port)


async def test_a_silent_address_gives_up_at_the_timeout():
    # TEST-NET-1 (RFC 5737) is never routed: no answer, or at once unreachable
    started = asyncio.get_running_loop().time()
    assert not await answers("192.0.2.1", 9, timeout=0.3)
    assert asyncio.get_running_loop().time() - started < 2


async def test_a_server_that_answers_is_alive_and_costs_slurm_nothing(
    monkeypatch, quick_site, monitor, ports
):
    cluster = _cluster(monkeypatch, silent={"node1"})
    alive = Liveness()
    for _ in range(3):
        assert await alive.lost(quick_site, monitor, _job("1"), _at(ports[0])) is None
        await asyncio.sleep(0.15)
    assert cluster.gets == 0 and monitor.interval == 60 and not alive.lost_node


async def test_a_silent_server_on_a_node_slurm_lost_is_lost_after_the_limit(
    monkeypatch, quick_site, monitor, ports
):
    cluster = _cluster(monkeypatch, silent={"node1"})
    knocks = Liveness()
    job = _job("1")  # runs on node1
    assert await knocks.lost(quick_site, monitor, job, _at(ports[1])) is None
    assert monitor.interval == 0.1  # the first silent knock: Slurm is polled fast
    assert cluster.gets == 0  # not yet silent for the limit
    await asyncio.sleep(0.35)
    sentence = await knocks.lost(quick_site, monitor, job, _at(ports[1]))
    assert sentence.startswith("Your session (Slurm job 1) stopped because its node (node1) failed")
    assert knocks.lost_node == "node1"


@pytest.mark.parametrize(
    "cluster_kwargs",
    [
        {"silent": {"other-node"}},  # Slurm still hears from the session's node
        {"silent": {"node1"}, "error": "slurm_load_node: Unable to contact slurm controller"},
    ],
)
async def test_silence_alone_never_ends_a_session(
    monkeypatch, quick_site, monitor, ports, cluster_kwargs
):
    _cluster(monkeypatch, **cluster_kwargs)
    knocks = Liveness()
    for _ in range(3):
        assert await knocks.lost(quick_site, monitor, _job("1"), _at(ports[1])) is None
        await asyncio.sleep(0.2)
    assert not knocks.lost_node


async def test_an_answer_restarts_the_count(monkeypatch, quick_site, monitor, ports):
    _cluster(monkeypatch, silent={"node1"})
    knocks = Liveness()
    await knocks.lost(quick_site, monitor, _job("1"), _at(ports[1]))
    await asyncio.sleep(0.35)
    assert await knocks.lost(quick_site, monitor, _job("1"), _at(ports[0])) is None
    assert knocks.silent_since is None
    assert await knocks.lost(quick_site, monitor, _job("1"), _at(ports[1])) is None


@pytest.mark.parametrize(
    "job, server",
    [
        (_job("1", state="PENDING"), _at(1)),  # not running yet
        (_job("1"), ""),  # not known (a session started before this hub version)
        (_job("1"), _at(1, host="")),
        (_job("1"), _at(0)),
    ],
)
async def test_no_knock_without_a_running_job_and_its_address(
    monkeypatch, quick_site, monitor, job, server
):
    _cluster(monkeypatch, silent={"node1"})
    knocks = Liveness()
    assert await knocks.lost(quick_site, monitor, job, server) is None
    assert knocks.silent_since is None and monitor.interval == 60


async def test_a_zero_limit_leaves_the_verdict_to_slurm(monkeypatch, quick_site, monitor, ports):
    cluster = _cluster(monkeypatch, silent={"node1"})
    slurm = quick_site.slurm.model_copy(update={"node_silence_limit": 0})
    site = quick_site.model_copy(update={"slurm": slurm})
    knocks = Liveness()
    for _ in range(2):
        assert await knocks.lost(site, monitor, _job("1"), _at(ports[1])) is None
        await asyncio.sleep(0.1)
    assert cluster.gets == 0 and monitor.interval == 0.1
