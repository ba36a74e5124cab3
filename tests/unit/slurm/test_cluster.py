import asyncio
import json
from pathlib import Path

from spawners.slurm.client import SlurmError
from spawners.slurm.cluster import ClusterStateCache
from spawners.slurm.partitions import gpu_counts, node_usable, partition_loads

# Real `sinfo --json` from the local cluster with one 1-GPU, 2-CPU job running.
SINFO = json.loads((Path(__file__).parent / "fixtures" / "sinfo-22.05.json").read_text())


def test_real_sinfo_gives_free_cpus_and_gpus_per_partition():
    loads = partition_loads(SINFO["nodes"])
    gpu = loads["gpu"]
    assert (gpu.total_gpus, gpu.free_gpus, gpu.free_gpus_by_type) == (4, 3, {"h100": 3})
    assert (gpu.total_cpus, gpu.free_cpus, gpu.largest_node_gpus) == (64, 62, 4)
    assert loads["cpu"].free_cpus == 62


def test_gres_strings():
    assert gpu_counts("gpu:a100:2(S:0),gpu:h100:1,gpu:3") == {"a100": 2, "h100": 1, "": 3}
    assert gpu_counts("gpu:h100:2(IDX:0-1),shard:h100:8") == {"h100": 2}
    assert gpu_counts(None) == {} and gpu_counts("N/A") == {}


def test_drained_and_down_nodes_offer_nothing():
    node = dict(SINFO["nodes"][0])
    assert node_usable(node)
    drained = {**node, "state": "idle", "state_flags": ["DRAIN"]}
    down = {**node, "state": "down", "state_flags": []}
    for bad in (drained, down):
        assert not node_usable(bad)
        load = partition_loads([bad])["gpu"]
        assert (load.nodes, load.usable_nodes, load.free_gpus, load.free_cpus) == (1, 0, 0, 0)


class FakeClient:
    def __init__(self, fail=False):
        self.calls = 0
        self.fail = fail

    async def nodes(self):
        self.calls += 1
        await asyncio.sleep(0.05)
        if self.fail:
            raise SlurmError("Unable to contact slurm controller", transient=True)
        return SINFO["nodes"]

    async def reservations(self):
        return "ReservationName=course Users=demo05 State=ACTIVE"


async def test_forty_concurrent_readers_share_one_query():
    client = FakeClient()
    cache = ClusterStateCache(client, interval=60)
    states = await asyncio.gather(*(cache.get() for _ in range(40)))
    assert client.calls == 1 and cache.refreshes == 1
    assert all(state is states[0] for state in states)
    assert states[0].reservations[0].name == "course"
    await cache.get()
    assert client.calls == 1  # still within the interval


async def test_a_failed_query_keeps_the_last_figures_and_says_so():
    client = FakeClient()
    cache = ClusterStateCache(client, interval=0.01)
    good = await cache.get()
    client.fail = True
    await asyncio.sleep(0.02)
    stale = await cache.get()
    assert stale.error and "slurm controller" in stale.error
    assert stale.partitions == good.partitions
