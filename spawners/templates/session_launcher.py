"""Runs inside a session job (stdlib only, any Python 3.8+ image).

Picks a free port, starts the single-user server on it, and reports the port to the
hub only once the server accepts connections, so the hub's first readiness check
succeeds instead of backing off. Then it waits for the server, passing on signals,
and exits with the server's status.
"""

import json
import os
import signal
import socket
import ssl
import sys
import time
import urllib.parse
import urllib.request

LISTEN_TIMEOUT = 300


def free_port():
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def report_port(port):
    url = os.environ["JUPYTERHUB_API_URL"].rstrip("/") + "/factorylab/port"
    request = urllib.request.Request(
        url,
        data=json.dumps({"port": port}).encode(),
        headers={
            "Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"],
            "Content-Type": "application/json",
        },
        method="POST",
    )
    context = None
    if os.environ.get("JUPYTERHUB_SSL_CLIENT_CA"):
        context = ssl.create_default_context(cafile=os.environ["JUPYTERHUB_SSL_CLIENT_CA"])
        context.load_cert_chain(
            os.environ["JUPYTERHUB_SSL_CERTFILE"], os.environ["JUPYTERHUB_SSL_KEYFILE"]
        )
    urllib.request.urlopen(request, timeout=60, context=context).read()


def main():
    server, args = sys.argv[1], sys.argv[2:]
    port = free_port()
    probe_host = "127.0.0.1"
    service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if service_url:
        parts = urllib.parse.urlsplit(service_url)
        if parts.hostname not in (None, "", "0.0.0.0", "::"):
            probe_host = parts.hostname
        netloc = f"{parts.hostname}:{port}"
        os.environ["JUPYTERHUB_SERVICE_URL"] = parts._replace(netloc=netloc).geturl()
    sys.stdout.flush()

    child = os.fork()
    if child == 0:
        os.execv(server, [server, f"--port={port}", *args])
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, lambda signum, _frame: os.kill(child, signum))

    deadline = time.monotonic() + LISTEN_TIMEOUT
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            sys.exit(f"FactoryLab: the server exited (status {code}) before it listened")
        try:
            socket.create_connection((probe_host, port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                os.kill(child, signal.SIGTERM)
                sys.exit(f"FactoryLab: the server did not listen within {LISTEN_TIMEOUT} s")
            time.sleep(0.05)

    try:
        report_port(port)
    except Exception as exc:
        os.kill(child, signal.SIGTERM)
        sys.exit(f"FactoryLab: could not report the session port to the hub: {exc}")
    print(f"FactoryLab: server listening on port {port}, reported to the hub", flush=True)

    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
