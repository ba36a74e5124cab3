"""``factorylab doctor --dask``: a Dask worker on one node joins a scheduler on another.

Two jobs of the sample user run this with the site's default image: the scheduler on one
node, the worker on another. The scheduler makes a throwaway certificate (mutual TLS, as
a session's Dask does), listens on its node's address, and leaves its address and the
certificate in a private folder of the user's home (shared by the nodes); the worker
joins with them. The scheduler reports to the doctor, with ``nonce``, which nodes'
workers joined, then removes the folder.
"""

import asyncio
import json
import os
import shutil
import socket
import time

PROBE = globals().get("PROBE", {})  # the doctor's line above this file's text sets it
JOIN_TIMEOUT = 150


def node_address():
    return socket.gethostbyname(socket.gethostname())


def write_private(path, data):
    descriptor = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(data)
    os.replace(path + ".tmp", path)


def report(probe, result):
    result["nonce"] = probe["nonce"]
    with socket.create_connection((probe["report_host"], probe["report_port"]), 30) as out:
        out.sendall(json.dumps(result).encode() + b"\n")


async def scheduler(probe):
    from distributed import Scheduler
    from distributed.security import Security

    share = probe["share"]
    os.makedirs(share, mode=0o700)
    security = Security.temporary()
    result = {"scheduler_node": socket.gethostname(), "worker_nodes": []}
    try:
        async with Scheduler(
            host=node_address(), port=0, protocol="tls", security=security, dashboard=False
        ) as server:
            result["scheduler"] = server.address
            pem = {
                "address": server.address,
                "ca": security.tls_ca_file,
                "cert": security.tls_scheduler_cert,
                "key": security.tls_scheduler_key,
            }
            write_private(os.path.join(share, "scheduler.json"), json.dumps(pem))
            deadline = time.monotonic() + JOIN_TIMEOUT
            while not server.workers and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            result["worker_nodes"] = sorted({str(w.name) for w in server.workers.values()})
    except Exception as exc:  # the doctor says what went wrong
        result["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        shutil.rmtree(share, ignore_errors=True)
    report(probe, result)


async def worker(probe):
    from distributed import Worker
    from distributed.security import Security

    path = os.path.join(probe["share"], "scheduler.json")
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)
    with open(path) as handle:
        pem = json.load(handle)
    security = Security(
        tls_ca_file=pem["ca"],
        tls_worker_cert=pem["cert"],
        tls_worker_key=pem["key"],
        require_encryption=True,
    )
    async with Worker(
        pem["address"], security=security, name=socket.gethostname(), nthreads=1, dashboard=False
    ) as running:
        await asyncio.wait_for(running.finished(), JOIN_TIMEOUT)


if __name__ == "__main__":
    asyncio.run(scheduler(PROBE) if PROBE.get("role") == "scheduler" else worker(PROBE))
