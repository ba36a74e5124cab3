"""``factorylab doctor``'s probe job (stdlib only: it runs with the node's python3).

The doctor submits it as a sample user, prepended with ``#SBATCH`` lines and a
``PROBE = {...}`` line: where to report (the doctor's listener on the hub host), the
hub's API address, the image environments, and two secrets. On its node the job:

- imports each image environment's Jupyter server;
- connects to the hub's API;
- listens on a port of its node's own address, and reports that port with what it saw
  (its node, its home, the imports, the hub, its clock) to the doctor, with ``nonce``;
- then waits for the doctor to connect to that port: whoever sends ``nonce`` first gets
  ``answer``; other connections get nothing, and the job keeps waiting.
"""

import hmac
import json
import os
import socket
import subprocess
import time

PROBE = globals().get("PROBE", {})  # the doctor's line above this file's text sets it
IMPORT_CHECK = "import jupyterhub.singleuser, jupyterlab"
IMPORT_TIMEOUT = 60
ACCEPT_UNTIL = 280  # seconds after the report: the job's time limit is 5 minutes


def node_address():
    """The address the node's name resolves to on the node itself."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "0.0.0.0"


def image_imports(images):
    """``{image: "ok" | why not}`` for each image environment's Python (an argv)."""
    results = {}
    for name, python in images.items():
        try:
            done = subprocess.run(
                [*python, "-c", IMPORT_CHECK],
                capture_output=True,
                text=True,
                timeout=IMPORT_TIMEOUT,
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


def answer_the_doctor(listener, nonce, answer, until):
    """Accept connections until one sends ``nonce``; answer that one only."""
    while time.monotonic() < until:
        listener.settimeout(max(0.1, until - time.monotonic()))
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(5)
            try:
                heard = connection.recv(len(nonce))
            except OSError:
                continue
            if hmac.compare_digest(heard, nonce):
                connection.sendall(answer)
                return


def main(probe):
    home = os.path.expanduser("~")
    listener = socket.socket()
    listener.bind((node_address(), 0))
    listener.listen(4)
    report = {
        "nonce": probe["nonce"],
        "node": socket.gethostname(),
        "port": listener.getsockname()[1],
        "home": home,
        "home_inode": os.stat(home).st_ino,
        "images": image_imports(probe.get("images", {})),
        "hub": hub_reachable(probe["hub_host"], probe["hub_port"]),
    }
    report["time"] = time.time()
    with socket.create_connection((probe["report_host"], probe["report_port"]), 30) as out:
        out.sendall(json.dumps(report).encode() + b"\n")
    until = time.monotonic() + ACCEPT_UNTIL
    answer_the_doctor(listener, probe["nonce"].encode(), probe["answer"].encode(), until)


if __name__ == "__main__":
    main(PROBE)
