"""Runs inside a session job, after session_files.py (the job script joins the two, so the
names this file uses from that one are defined). Stdlib only, any Python 3.8+ image.

Writes the session's files (session_files.py), starts the single-user server on a port
that it alone holds, and reports the port to the hub once the server listens (or
the log's tail, if it fails). Then it waits for the server, passing on signals.

It stays for the whole session, so it keeps its memory small: the certificates
(``cryptography``) and the port report (``urllib.request``, ``ssl``) are made in short-lived
children (:func:`in_child`), and what they import leaves with them.
"""

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.parse

LISTEN_TIMEOUT = 300
LOG_TAIL_BYTES = 64 * 1024
PORT_TRIES = 5
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def free_port():
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


class StepFailed(Exception):
    """A step run by :func:`in_child` failed; the message is the child's."""


def in_child(step, *args):
    """Run ``step(*args)`` in a forked child and wait for it; raise StepFailed if it fails.

    Whatever the step imports is freed when the child exits, instead of staying in the
    launcher's memory (about 14 MiB for ``cryptography``, ``urllib.request`` and ``ssl``)
    while the session lives. A step may not change the environment: the child's is its own.
    """
    reader, writer = os.pipe()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
    except BaseException:
        os.close(reader)
        os.close(writer)
        raise
    if pid == 0:  # the child never returns into the launcher's code: os._exit, always
        code = 1
        try:
            os.close(reader)
            step(*args)
            code = 0
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                os.write(writer, f"{type(exc).__name__}: {exc}".encode(errors="replace"))
        finally:
            with contextlib.suppress(BaseException):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise StepFailed(message or f"the step's process ended with status {code}")


def post_to_hub(route, payload):
    """POST ``payload`` (JSON) to the hub's FactoryLab API with the server's own token."""
    import ssl
    import urllib.request

    url = os.environ["JUPYTERHUB_API_URL"].rstrip("/") + "/factorylab/" + route
    token, kind = os.environ["JUPYTERHUB_API_TOKEN"], "application/json"
    headers = {"Authorization": "token " + token, "Content-Type": kind}
    request = urllib.request.Request(url, json.dumps(payload).encode(), headers, method="POST")
    context = None
    if os.environ.get("JUPYTERHUB_SSL_CLIENT_CA"):
        context = ssl.create_default_context(cafile=os.environ["JUPYTERHUB_SSL_CLIENT_CA"])
        context.load_cert_chain(
            os.environ["JUPYTERHUB_SSL_CERTFILE"], os.environ["JUPYTERHUB_SSL_KEYFILE"]
        )
    urllib.request.urlopen(request, timeout=60, context=context).read()


def log_tail(limit=LOG_TAIL_BYTES):
    """The end of this job's own log (the hub never reads the user's files)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        descriptor = os.open(os.environ["FACTORYLAB_JOB_LOG"], flags)
    except (KeyError, OSError):
        return ""
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return ""
        handle.seek(max(0, os.fstat(descriptor).st_size - limit))
        return handle.read(limit).decode(errors="replace")


def fail(message):
    """Tell the hub the last lines of the log (so the user sees why), then exit."""
    print(message, flush=True)
    try:
        post_to_hub("failure", {"log_tail": log_tail()})
    except Exception as exc:
        print(f"FactoryLab: could not send the log's last lines to the hub: {exc}", flush=True)
    sys.exit(message)


def listening_sockets(port):
    """Inodes of the sockets listening on TCP ``port`` in this node's network namespace."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def open_sockets(pid):
    """Inodes of the sockets process ``pid`` holds open."""
    links = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            links.append(os.readlink(f"/proc/{pid}/fd/{name}"))
    return {link[8:-1] for link in links if link.startswith("socket:[")}


def holds_port(pid, port):
    """Whether ``pid`` holds every listener on ``port``: nobody else squats on it."""
    listeners = listening_sockets(port)
    return bool(listeners) and listeners <= open_sockets(pid)


CHILD = [0]  # the server being started or run: where signals to the launcher go


def forward_signal(signum, _frame):
    """Pass a signal on to the current server (one that already ended is no error)."""
    with contextlib.suppress(ProcessLookupError):
        if CHILD[0]:
            os.kill(CHILD[0], signum)


def start_server(server, args):
    """Start the server on a free port that it alone holds; return (pid, port).

    Another user on the node can see the port in ``ps`` and bind it first. The server
    never moves to another port by itself (``port_retries=0``), and the port is
    reported only once this server holds every listener on it; a squatted port is
    given up for a fresh one.
    """
    for _ in range(PORT_TRIES):
        port = free_port()
        probe_host = "127.0.0.1"
        service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        if service_url:
            parts = urllib.parse.urlsplit(service_url)
            # No address from the hub: the node's own, where the hub and proxy reach it.
            address = parts.hostname or node_address()
            if address not in ("0.0.0.0", "::"):
                probe_host = address
            host = f"[{address}]" if ":" in address else address
            netloc = f"{host}:{port}"
            os.environ["JUPYTERHUB_SERVICE_URL"] = parts._replace(netloc=netloc).geturl()
        sys.stdout.flush()
        child = os.fork()
        if child == 0:
            # The port travels in JUPYTERHUB_SERVICE_URL, which only this user can read;
            # a --port=N argument would show in every user's `ps`.
            port_arg = [] if service_url else [f"--port={port}"]
            os.execv(server, [server, *port_arg, "--ServerApp.port_retries=0", *args])
        CHILD[0] = child
        if wait_until_listening(child, probe_host, port):
            if holds_port(child, port):
                return child, port
            os.kill(child, signal.SIGTERM)
            os.waitpid(child, 0)
        elif not listening_sockets(port):
            fail("FactoryLab: the server exited before it listened")
        print(f"FactoryLab: port {port} is taken by another process; trying another", flush=True)
    fail(f"FactoryLab: no free port that this server alone holds after {PORT_TRIES} tries")


def wait_until_listening(child, host, port):
    """True once ``host:port`` accepts connections; False if the server exited first."""
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            print(f"FactoryLab: the server exited (status {code}) before it listened", flush=True)
            return False
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            if time.monotonic() > deadline:
                os.kill(child, signal.SIGTERM)
                fail(f"FactoryLab: the server did not listen within {LISTEN_TIMEOUT} s")
            time.sleep(0.05)


def main():
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward_signal)
    started = time.time()
    server, args = sys.argv[1], sys.argv[2:]
    write_tls_files()  # before anything talks to the hub: it needs the client certificate
    try:
        in_child(write_dask_tls)  # before the configuration that names the files
        write_dask_config(started)
    except (KeyError, OSError, ValueError, StepFailed) as exc:
        os.environ.pop("FACTORYLAB_DASK_CONFIG", None)
        print(f"FactoryLab: no Dask configuration for this session: {exc}", flush=True)
    try:
        deliver_notebooks()
    except OSError as exc:
        print(f"FactoryLab: the starter notebooks were not copied: {exc}", flush=True)
    try:
        pull_material()
    except (OSError, KeyError, ValueError, subprocess.SubprocessError) as exc:
        print(f"FactoryLab: the course material was not pulled: {exc}", flush=True)
    try:
        write_kernelspecs()
    except (OSError, ValueError) as exc:
        print(f"FactoryLab: no kernel jobs in the Launcher: {exc}", flush=True)
    child, port = start_server(server, args)
    try:
        in_child(post_to_hub, "port", {"port": port})
    except (OSError, StepFailed) as exc:
        os.kill(child, signal.SIGTERM)
        sys.exit(f"FactoryLab: could not report the session port to the hub: {exc}")
    print(f"FactoryLab: server listening on port {port}, reported to the hub", flush=True)

    _, status = os.waitpid(child, 0)
    # Hold the port while the hub drops the route: another user could take it otherwise.
    with socket.socket() as holder, contextlib.suppress(Exception):
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):
            holder.bind(("", port))
            holder.listen()
        post_to_hub("ended", {})
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
