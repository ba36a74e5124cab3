"""The floor of bench.kernel_open: ``sbatch`` of a bare ipykernel on the GPU partition, and
a client that connects and executes one cell. Run by bench.kernel_open, as root, with
the image env's Python (it has jupyter_client): ``python kernel_floor.py USER ENV``.

Prints ``{"seconds": …, "job": …, "output": …}``: from just before ``sbatch`` until the
cell's output arrived. The kernel binds every address of its node; the client finds
the node from Slurm and the ports in the connection file the kernel writes back (the
user's home is shared, as on a real site).
"""

import json
import os
import pwd
import secrets
import socket
import subprocess
import sys
import time

from jupyter_client import BlockingKernelClient

CELL = (
    "import os, socket; print('GPU', os.environ.get('CUDA_VISIBLE_DEVICES'), socket.gethostname())"
)
PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def main() -> None:
    user, env = sys.argv[1], sys.argv[2]
    account = pwd.getpwnam(user)
    path = f"{account.pw_dir}/.bench-kernel-floor-{secrets.token_hex(4)}.json"
    info = {"transport": "tcp", "ip": "0.0.0.0", "key": secrets.token_hex(16)}
    info.update({"signature_scheme": "hmac-sha256", **dict.fromkeys(PORTS, 0)})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(info, handle)
    os.chown(path, account.pw_uid, account.pw_gid)
    script = f"""#!/bin/bash
#SBATCH --job-name=bench-kernel-floor
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=1
#SBATCH --mem=2G
#SBATCH --time=00:10:00
#SBATCH --output=/dev/null
#SBATCH --chdir={account.pw_dir}
exec {env}/bin/python -m ipykernel_launcher -f {path}
"""
    began = time.perf_counter()
    job = subprocess.run(
        ["runuser", "-u", user, "--", "sbatch", "--parsable"],
        input=script,
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    try:
        node, written = "", {}
        while not node or not all(written.get(port) for port in PORTS):
            time.sleep(0.05)
            node = subprocess.run(
                ["squeue", "-h", "-j", job, "-t", "R", "-o", "%N"], capture_output=True, text=True
            ).stdout.strip()
            try:
                with open(path) as handle:
                    written = json.load(handle)
            except ValueError:
                written = {}
            if time.perf_counter() - began > 300:
                raise TimeoutError("the floor kernel did not start in 300 s")
        client = BlockingKernelClient()
        client.load_connection_info({**written, "ip": socket.gethostbyname(node)})
        client.start_channels()
        client.wait_for_ready(timeout=120)
        output = []
        client.execute_interactive(
            CELL, timeout=120, output_hook=lambda msg: output.append(msg["content"].get("text", ""))
        )
        elapsed = time.perf_counter() - began
        client.stop_channels()
        print(json.dumps({"seconds": elapsed, "job": job, "output": "".join(output).strip()}))
    finally:
        subprocess.run(["scancel", job], check=False)
        os.unlink(path)


if __name__ == "__main__":
    main()
