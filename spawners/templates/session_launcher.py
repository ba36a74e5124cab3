"""Runs inside a session job (stdlib only, any Python 3.8+ image).

Writes the session's Dask configuration (if the hub sent one), picks a free port,
starts the single-user server on it, and reports the port to the hub only once the
server accepts connections, so the hub's first readiness check succeeds instead of
backing off. Then it waits for the server, passing on signals, and exits with the
server's status.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import sys
import time
import urllib.parse
import urllib.request

LISTEN_TIMEOUT = 300


def node_address():
    """The address the node's host name resolves to: what other nodes use to reach it."""
    name = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    for candidate in (socket.gethostname(), name):
        try:
            return socket.gethostbyname(candidate)
        except OSError:
            continue
    return "127.0.0.1"


def write_dask_config(started):
    """Fill in what only the job knows and write the config where Dask reads it."""
    text = os.environ.pop("FACTORYLAB_DASK_CONFIG", "")
    directory = os.environ.get("DASK_CONFIG")
    if not text or not directory:
        return
    walltime = int(os.environ.get("FACTORYLAB_WALLTIME_SECONDS", "0"))
    margin = int(os.environ.get("FACTORYLAB_DASK_DEADLINE_MARGIN", "0"))
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started + walltime - margin))
    text = text.replace("@SESSION_END@", end).replace("@NODE_ADDRESS@", node_address())
    json.loads(text)  # still valid JSON (and so valid YAML) after the substitution
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "factorylab-session.yaml")
    with open(path + ".tmp", "w") as handle:
        handle.write(text + "\n")
    os.replace(path + ".tmp", path)
    print(f"FactoryLab: Dask configuration for SLURMCluster() in {path}", flush=True)


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


def write_tls_files():
    """Internal SSL: write the session's key pair and the CA the hub sent (0600, 0700 dir)."""
    files = json.loads(os.environ.pop("FACTORYLAB_TLS_FILES", "") or "{}")
    for path, text in files.items():
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        os.chmod(os.path.dirname(path), 0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # also when the file was there before
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)


def deliver_notebooks():
    """Copy the site's starter notebooks into the user's folder, never over their files.

    A file is copied once: if the user edits it, their version stays; if they delete
    it, it does not come back (``.factorylab-delivered`` lists what was delivered). New
    notebooks the site adds later arrive at the next session.
    """
    source = os.environ.pop("FACTORYLAB_NOTEBOOKS_SOURCE", "")
    target = os.environ.pop("FACTORYLAB_NOTEBOOKS_TARGET", "")
    if not source or not target or not os.path.isdir(source):
        return
    manifest = os.path.join(target, ".factorylab-delivered")
    try:
        with open(manifest) as handle:
            delivered = {line.rstrip("\n") for line in handle}
    except OSError:
        delivered = set()
    copied = []
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            relative = os.path.relpath(os.path.join(root, name), source)
            if name.startswith(".") or relative in delivered:
                continue
            destination = os.path.join(target, relative)
            if not os.path.lexists(destination):
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                shutil.copyfile(os.path.join(root, name), destination)
                copied.append(relative)
            delivered.add(relative)
    os.makedirs(target, exist_ok=True)
    with open(manifest, "w") as handle:
        handle.writelines(f"{line}\n" for line in sorted(delivered))
    if copied:
        print(f"FactoryLab: {len(copied)} starter notebook files copied to {target}", flush=True)


def main():
    started = time.time()
    server, args = sys.argv[1], sys.argv[2:]
    write_tls_files()  # before anything talks to the hub: it needs the client certificate
    try:
        write_dask_config(started)
    except (OSError, ValueError) as exc:
        print(f"FactoryLab: no Dask configuration for this session: {exc}", flush=True)
    try:
        deliver_notebooks()
    except OSError as exc:
        print(f"FactoryLab: the starter notebooks were not copied: {exc}", flush=True)
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
