"""The starter notebooks, executed headless in their images on the real cluster.

Each runs at its "ci-small" scale, through the hub, in a session of its own image: the
session's first start copies the starters into ~/factorylab-notebooks, the test injects
its parameters (as papermill does) and a network guard, and nbclient executes the
notebook inside the session. Its Dask workers are real Slurm jobs. The guard is an audit
hook in the kernel and a preload in every Dask worker: any TCP connection or datagram
that would leave the cluster's own network (its nodes talk to each other: workers run
on other nodes than the scheduler), and any name lookup of a host outside it, is refused
and logged, and the test fails.
"""

import json
import time

import pytest

from ..support.hub import execute_notebook, proxied, run_in_kernel

GUARD = '''
"""FactoryLab test guard: no socket may leave the demo cluster's network."""
import ipaddress, os, re, socket, sys

_LOG = os.path.expanduser("~/factorylab-netguard.log")
_NAMES = {"localhost", socket.gethostname(), socket.getfqdn()}
_ADDRESSES = {socket.gethostbyname(socket.gethostname())}
_CLUSTER = ipaddress.ip_network("10.213.0.0/24")  # the login node and c01 … c08


def _local(host):
    if isinstance(host, bytes):
        host = host.decode()
    if host in (None, "") or host in _NAMES or host in _ADDRESSES:
        return True
    if re.fullmatch(r"c0[1-8]|factorylab-login", host):
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    # 0.0.0.0: listening, not leaving
    return address.is_loopback or address.is_unspecified or address in _CLUSTER


def _refuse(what):
    with open(_LOG, "a") as log:
        log.write(f"{os.getpid()} {what}\\n")
    raise PermissionError(f"FactoryLab test: network access refused: {what}")


def _guard(event, args):
    if event == "socket.connect":
        sock, address = args
        inet = sock.family in (socket.AF_INET, socket.AF_INET6)
        if inet and sock.type == socket.SOCK_STREAM and not _local(address[0]):
            _refuse(f"connect {address}")
    elif event in ("socket.sendto", "socket.sendmsg"):
        address = args[-1]
        if isinstance(address, tuple) and not _local(address[0]):
            _refuse(f"{event} {address}")
    elif event == "socket.getaddrinfo" and not _local(args[0]):
        _refuse(f"lookup {args[0]!r}")


sys.addaudithook(_guard)
'''

GUARD_CELL = """\
import os, runpy, dask
_guard_file = os.path.expanduser("~/factorylab-netguard.py")
runpy.run_path(_guard_file)  # this kernel
dask.config.set({"jobqueue.slurm.worker-extra-args": ["--preload", _guard_file]})  # workers
"""


def _cell(source: str, tag: str) -> dict:
    return {
        "cell_type": "code",
        "id": tag,
        "metadata": {"tags": [tag]},
        "execution_count": None,
        "outputs": [],
        "source": source,
    }


def _results(notebook: dict) -> dict:
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("FACTORYLAB_RESULTS "):
                    return json.loads(line.split(" ", 1)[1])
    raise AssertionError("the notebook printed no FACTORYLAB_RESULTS line")


def _finite(value) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    return True


def check_getting_started(results):
    assert abs(results["pi"] - 3.14159) < 0.01
    assert 3.0 < results["widget_pi"] < 3.3
    assert results["facts"]["Slurm job"].isdigit()


def check_climate(results):
    assert results["mse_network"] < results["mse_linear"]  # held-out sub-grid tendency
    assert results["rmse_network"] < results["rmse_none"]  # hybrid forecast vs no model
    assert 0.3 < results["eof1_variance"] < 0.7
    assert set(results["widget"]) == {"network", "linear", "none"}


def check_biomed(results):
    assert results["rmse_model"] < results["rmse_baseline"]
    assert results["r2"] > 0.2
    assert 3 < results["widget_prediction"] < 10  # a pIC50 for the SMILES box
    assert results["invalid_smiles"] is None


def check_chip(results):
    assert results["log_cells_rmse_model"] < results["log_cells_rmse_baseline"]
    assert results["depth_rmse_model"] < results["depth_rmse_baseline"]
    predicted, actual = results["widget_prediction"], results["widget_synthesis"]
    assert predicted["cells"] > 0 and actual["cells"] > 1000
    assert abs(predicted["cells"] - actual["cells"]) / actual["cells"] < 0.5


CASES = [
    ("00-getting-started.ipynb", "base", "demo30", check_getting_started),
    ("climate/lorenz96-subgrid.ipynb", "climate", "demo40", check_climate),
    ("biomedicine/activity-prediction.ipynb", "biomed", "demo19", check_biomed),
    ("chip-design/synthesis-sweep.ipynb", "chip", "demo17", check_chip),
]


@pytest.mark.timeout(900)  # a spawn (90 s) and nbclient's run (up to 420 s) may add up
@pytest.mark.parametrize(("path", "image", "user", "check"), CASES, ids=[c[1] for c in CASES])
def test_starter_notebook_runs_in_its_image(hub, session, path, image, user, check):
    session(user, {"image": image, "cpus": "2", "memory": "4G", "walltime": "00:30:00"})
    token = hub.user_token(user)
    delivered = proxied(hub, user, f"api/contents/factorylab-notebooks/{path}", token)
    assert delivered.status_code == 200, "the first session did not deliver the starters"
    notebook = delivered.json()["content"]
    assert notebook["metadata"]["kernelspec"]["name"] == f"factorylab-{image}"

    cells = notebook["cells"]
    index = next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    cells.insert(index + 1, _cell('SCALE = "ci-small"\n', "injected-parameters"))
    cells.insert(0, _cell(GUARD_CELL, "factorylab-test-guard"))
    run_path = path.replace(".ipynb", ".ci.ipynb")
    for name, body in (
        (f"factorylab-notebooks/{run_path}", {"type": "notebook", "content": notebook}),
        ("factorylab-netguard.py", {"type": "file", "format": "text", "content": GUARD}),
    ):
        put = proxied(hub, user, f"api/contents/{name}", token, method="PUT", json=body)
        assert put.status_code in (200, 201), put.text
    proxied(hub, user, "api/contents/factorylab-netguard.log", token, method="DELETE")

    started = time.monotonic()
    report = execute_notebook(hub, user, token, f"factorylab-notebooks/{run_path}")
    elapsed = time.monotonic() - started
    guard_log = proxied(hub, user, "api/contents/factorylab-netguard.log", token)
    assert guard_log.status_code == 404, guard_log.json().get("content")
    assert report["returncode"] == 0, report["stderr"]
    assert elapsed < 180, f"{path} took {elapsed:.0f} s at ci-small (limit 180 s)"

    executed = proxied(hub, user, f"api/contents/factorylab-notebooks/{run_path}", token)
    results = _results(executed.json()["content"])
    assert _finite(results), results
    # every starter reports how many Dask workers (Slurm jobs) it got; ci-small asks for 2
    assert results.get("workers") == 2, f"workers reported: {results.get('workers')!r}"
    check(results)
    proxied(hub, user, f"api/contents/factorylab-notebooks/{run_path}", token, method="DELETE")


PROBE = """
import os, runpy, socket
runpy.run_path(os.path.expanduser("~/factorylab-netguard.py"))
for attempt in (lambda: socket.create_connection(("192.0.2.1", 80), timeout=1),
                lambda: socket.getaddrinfo("example.org", 443),
                lambda: socket.create_connection(("127.0.0.1", 9), timeout=1)):
    try:
        attempt()
        print("allowed")
    except PermissionError:
        print("refused")
    except OSError:
        print("allowed")  # loopback: let through, nothing listens on port 9
"""


def test_the_network_guard_refuses_what_leaves_the_node(hub, session):
    user = "demo30"
    session(user)
    token = hub.user_token(user)
    body = {"type": "file", "format": "text", "content": GUARD}
    proxied(hub, user, "api/contents/factorylab-netguard.py", token, method="PUT", json=body)
    proxied(hub, user, "api/contents/factorylab-netguard.log", token, method="DELETE")
    assert run_in_kernel(hub, user, token, PROBE).split() == ["refused", "refused", "allowed"]
    log = proxied(hub, user, "api/contents/factorylab-netguard.log", token).json()["content"]
    assert "'192.0.2.1'" in log and "lookup 'example.org'" in log
    proxied(hub, user, "api/contents/factorylab-netguard.log", token, method="DELETE")
