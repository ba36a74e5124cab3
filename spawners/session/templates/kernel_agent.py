"""Runs as a kernel's Slurm job, after node_address.py (the job script joins the two):
the kernel agent. It starts the kernel when the session's provisioner asks, again on
each restart (the same job: the GPUs stay), and signals or stops it.

The provisioner wrote the kernel's keys into the kernel's directory (0700, 0600 files,
in the user's home). The agent listens on this node's address with CurveZMQ under the
same keys, as the kernel does: whoever cannot read the keys can neither connect nor
read a message. It tells the provisioner where it listens through its job's comment,
which only the job's owner (and Slurm's operators) may set.

Requests are JSON objects: ``{"op": "start"}``, ``{"op": "poll"}``,
``{"op": "signal", "signum": N}`` and ``{"op": "kill"}``. Needs pyzmq (every image has
it, with ipykernel).
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import zmq

CONNECTION = "connection.json"
#: How long a kernel may take from its start until its sockets are bound.
BIND_TIMEOUT = 120
#: The session asks how the kernel is every few seconds (Jupyter's restarter): after this
#: long without a request its session is gone, and the job ends rather than hold a GPU.
SILENCE_LIMIT = 180
KEYS = ("key", "signature_scheme", "curve_publickey", "curve_secretkey")
PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def read_keys(kernel_dir):
    """The kernel's keys (and where the provisioner waits for the agent's call), from the
    file the provisioner wrote (this user's alone)."""
    path = os.path.join(kernel_dir, CONNECTION)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd) as handle:
        if os.fstat(handle.fileno()).st_uid != os.geteuid():
            raise OSError(f"{path} is not this user's")
        info = json.load(handle)
    keys = {key: info[key] for key in KEYS}
    keys["callback"] = info.get("callback")
    return keys


def call_back(context, keys, address, port):
    """Tell the provisioner at once where this agent listens (CurveZMQ, the same keys)."""
    if not keys.get("callback"):
        return
    push = context.socket(zmq.PUSH)
    push.curve_serverkey = push.curve_publickey = keys["curve_publickey"].encode()
    push.curve_secretkey = keys["curve_secretkey"].encode()
    push.linger = 5000
    push.connect(f"tcp://{keys['callback']}")
    push.send_json({"agent": f"{address}:{port}", "node": os.environ.get("SLURMD_NODENAME", "")})
    push.close()  # lingers until sent, or 5 s: the job's comment is the fallback


def announce(address, port):
    """Put ``address:port`` in this job's comment, where the provisioner looks for it."""
    job = os.environ["SLURM_JOB_ID"]
    comment = f"Comment=factorylab-kernel-agent={address}:{port}"
    subprocess.run(["scontrol", "update", f"JobId={job}", comment], check=True, timeout=60)


class Kernel:
    """One kernel process at a time, in its own process group."""

    def __init__(self, keys, address, runtime):
        self.keys, self.address, self.runtime = keys, address, runtime
        self.process = None
        self.starts = 0

    def start(self):
        """Start a fresh kernel (ending any other first); its ports once it has bound them."""
        self.stop()
        self.starts += 1
        path = os.path.join(self.runtime, f"kernel-{self.starts}.json")
        info = dict(self.keys, transport="tcp", ip=self.address, **dict.fromkeys(PORTS, 0))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(info, handle)
        environment = dict(os.environ, JPY_PARENT_PID=str(os.getpid()))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ipykernel_launcher", "-f", path],
            cwd=os.environ.get("FACTORYLAB_KERNEL_CWD") or os.environ["HOME"],
            env=environment,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + BIND_TIMEOUT
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"the kernel exited with code {code} while starting")
            try:
                with open(path) as handle:
                    written = json.load(handle)
            except (OSError, ValueError):
                written = {}
            if all(written.get(port) for port in PORTS):
                return {port: written[port] for port in PORTS}
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the kernel did not bind its ports within {BIND_TIMEOUT} s")

    def poll(self):
        """None while the kernel runs; its exit code once it ended (or was never started)."""
        if self.process is None:
            return 0
        return self.process.poll()

    def signal(self, signum):
        """Send ``signum`` to the kernel and everything it started."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def stop(self):
        """Kill the kernel's process group and reap the kernel."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def handle(kernel, request):
    """One request's answer."""
    op = request.get("op") if isinstance(request, dict) else None
    if op == "start":
        return {"ok": True, "ip": kernel.address, "ports": kernel.start()}
    if op == "poll":
        return {"ok": True, "exit_code": kernel.poll()}
    if op == "signal":
        signum = request.get("signum")
        if not isinstance(signum, int) or signum not in set(signal.Signals):
            return {"ok": False, "error": "signum must be a signal number"}
        kernel.signal(signum)
        return {"ok": True}
    if op == "kill":
        kernel.stop()
        return {"ok": True}
    return {"ok": False, "error": "op must be start, poll, signal or kill"}


def main():
    kernel_dir = sys.argv[1]
    keys = read_keys(kernel_dir)
    address = node_address()
    context = zmq.Context()
    server = context.socket(zmq.REP)
    server.linger = 0
    server.curve_secretkey = keys["curve_secretkey"].encode()
    server.curve_publickey = keys["curve_publickey"].encode()
    server.curve_server = True
    port = server.bind_to_random_port(f"tcp://{address}")
    runtime = tempfile.mkdtemp(prefix="factorylab-kernel-")  # node-local, 0700
    kernel = Kernel({key: keys[key] for key in KEYS}, address, runtime)

    def end(signum, frame):
        kernel.stop()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, end)
    try:
        call_back(context, keys, address, port)
        announce(address, port)
        print(f"FactoryLab: kernel agent listening on {address}:{port} (CurveZMQ)", flush=True)
        serve(server, kernel)
    finally:
        kernel.stop()
        shutil.rmtree(runtime, ignore_errors=True)


def serve(server, kernel):
    """Answer requests until none came for ``SILENCE_LIMIT`` seconds."""
    while server.poll(SILENCE_LIMIT * 1000):
        try:
            request = server.recv_json()
        except ValueError:
            request = None
        try:
            answer = handle(kernel, request)
        except Exception as exc:  # every request gets an answer: the REP socket needs one
            answer = {"ok": False, "error": str(exc)}
        if not (isinstance(request, dict) and request.get("op") == "poll"):
            print(f"FactoryLab: {request} -> {answer}", flush=True)
        server.send_json(answer)
    print(f"FactoryLab: no request for {SILENCE_LIMIT} s: the session is gone", flush=True)


if __name__ == "__main__":
    main()
