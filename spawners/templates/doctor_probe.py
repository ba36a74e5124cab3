"""``factorylab doctor``'s probe job (stdlib only: it runs with the node's python3).

The doctor submits it as a sample user, prepended with ``#SBATCH`` lines and a
``PROBE = {...}`` line: where to report (the doctor's listener on the hub host), the
hub's API address, the image environments and a nonce. On its node the job:

- imports each image environment's Jupyter server;
- connects to the hub's API;
- listens on a port of its node's own address, and reports that port with what it saw
  (its node, its home, the imports, the hub, its clock) to the doctor;
- then waits for the doctor to connect to that port, and answers with the nonce.
"""

import json
import os
import socket
import subprocess
import time

PROBE = globals().get("PROBE", {})  # the doctor's line above this file's text sets it
IMPORT_CHECK = "import jupyterhub.singleuser, jupyterlab"
ACCEPT_TIMEOUT = 60


def node_address():
    """The address the node's name resolves to on the node itself."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "0.0.0.0"


def image_imports(images):
    """``{image: "ok" | why not}`` for each image environment's Python."""
    results = {}
    for name, python in images.items():
        try:
            done = subprocess.run(
                [python, "-c", IMPORT_CHECK], capture_output=True, text=True, timeout=180
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            results[name] = str(exc)[:300]
            continue
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        results[name] = "ok" if done.returncode == 0 else lines[-1][:300]
    return results


def hub_reachable(host, port):
    """ "ok", or why the hub's API does not accept a connection from this node."""
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as exc:
        return str(exc)[:300]
    return "ok"


def main(probe):
    home = os.path.expanduser("~")
    listener = socket.socket()
    listener.bind((node_address(), 0))
    listener.listen(1)
    report = {
        "nonce": probe["nonce"],
        "node": socket.gethostname(),
        "address": listener.getsockname()[0],
        "port": listener.getsockname()[1],
        "home": home,
        "home_inode": os.stat(home).st_ino,
        "images": image_imports(probe.get("images", {})),
        "hub": hub_reachable(probe["hub_host"], probe["hub_port"]),
        "job": os.environ.get("SLURM_JOB_ID", ""),
    }
    report["time"] = time.time()
    with socket.create_connection((probe["report_host"], probe["report_port"]), 30) as out:
        out.sendall(json.dumps(report).encode() + b"\n")
    listener.settimeout(ACCEPT_TIMEOUT)
    try:
        connection, _ = listener.accept()
    except OSError:
        return
    with connection:
        connection.sendall(probe["nonce"].encode())


if __name__ == "__main__":
    main(PROBE)
