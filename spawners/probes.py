"""``factorylab doctor``'s probe jobs: what a session's job will meet on each node.

One small job per compute node (in the first of the site's partitions that holds it)
and at least one per partition, submitted as a sample member of ``users.group``
through the hub's own sudo rule. Each job (``templates/doctor_probe.py``) reports to a
listener the doctor opens on the hub's connect address; the doctor then checks, one
line each: the node's name resolves here to the address the job listens on, the job
sees the same home, every image environment imports, the job reaches the hub's API,
the hub reaches a port on the node, and the node's clock is within 2 s of the hub's.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import secrets
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from spawners.session.containers import container_prefix
from spawners.site import Site

#: How far a node's clock may be from the hub's (Dask's and the tokens' deadlines).
MAX_CLOCK_SKEW = 2.0
#: How long the doctor waits for every probe's report.
REPORT_TIMEOUT = 180
JOB_NAME = "factorylab-doctor"


@dataclass(frozen=True)
class Probe:
    """One probe job: where it is meant to run and the secret its report must carry."""

    partition: str
    node: str | None
    nonce: str
    answer: str = ""

    @property
    def label(self) -> str:
        return f"probe {self.partition}@{self.node}" if self.node else f"probe {self.partition}"


def plan(partitions: list[str], nodes: list[dict]) -> list[Probe]:
    """One probe per node (in the first of ``partitions``, the site's, that holds it), then
    one for each partition no node's probe covered. ``nodes``: ``sinfo --json``'s list.

    >>> nodes = [{"name": "c02", "partitions": ["cpu", "gpu"]},
    ...          {"name": "c01", "partitions": ["gpu", "cpu"]}, {"name": "x", "partitions": []}]
    >>> [(p.partition, p.node) for p in plan(["cpu", "gpu", "big"], nodes)]
    [('cpu', 'c01'), ('cpu', 'c02'), ('gpu', None)]
    """
    probes: list[Probe] = []
    for node in sorted(nodes, key=lambda n: n.get("name", "")):
        held = [p for p in partitions if p in (node.get("partitions") or [])]
        if held:
            probes.append(Probe(held[0], node["name"], *_secrets()))
    covered = {probe.partition for probe in probes}
    for name in partitions:
        if name not in covered and any(name in (n.get("partitions") or []) for n in nodes):
            probes.append(Probe(name, None, *_secrets()))
    return probes


def _secrets() -> tuple[str, str]:
    """A probe's nonce (its report's, and what the doctor sends its port) and answer."""
    return secrets.token_hex(16), secrets.token_hex(16)


def sbatch_lines(site: Site, partition: str, node: str | None) -> list[str]:
    """A doctor's job's ``#SBATCH`` lines: small, short, never requeued, on ``node``."""
    options = [
        f"--job-name={JOB_NAME}",
        f"--partition={partition}",
        "--time=5",
        "--ntasks=1",
        "--cpus-per-task=1",
        "--mem=500M",
        "--output=/dev/null",
        "--chdir=/",
        "--no-requeue",
    ]
    if node:
        options.append(f"--nodelist={node}")
    settings = site.partitions[partition]
    if settings.kind == "gpu" and settings.default_gpus:
        options.append(f"--gres=gpu:{settings.default_gpus}")
    return [f"#SBATCH {option}" for option in options]


def job_script(site: Site, probe: Probe, report_to: tuple[str, int]) -> str:
    """The probe's batch script: ``#SBATCH`` lines, its settings, then the program."""
    images = {
        name: [
            *container_prefix(image.apptainer, image.binds, 0),
            f"{image.venv.rstrip('/')}/bin/python",
        ]
        for name, image in site.images.items()
    }
    settings = {
        "nonce": probe.nonce,
        "answer": probe.answer,
        "report_host": report_to[0],
        "report_port": report_to[1],
        "hub_host": site.hub.hub_connect_ip,
        "hub_port": site.hub.hub_port,
        "images": images,
    }
    program = resources.files("spawners").joinpath("templates/doctor_probe.py").read_text()
    head = "\n".join(["#!/usr/bin/python3 -I", *sbatch_lines(site, probe.partition, probe.node)])
    settings_line = f"PROBE = __import__('json').loads({json.dumps(settings)!r})"
    return f"{head}\n{settings_line}\n{program}"


Submit = Callable[[str], str]
"""``submit(script) -> job id`` (sbatch as the sample user); raises RuntimeError."""


#: Fields of a report, and their types: anything else is no report.
REPORT_FIELDS = {
    "nonce": str,
    "node": str,
    "port": int,
    "home": str,
    "home_inode": int,
    "images": dict,
    "hub": str,
    "time": float,
}


def parse_report(
    data: bytes, wanted: set[str], fields: dict[str, type] = REPORT_FIELDS
) -> dict | None:
    """A report from ``data`` if it is one of ``wanted``'s, with every field well typed.

    >>> parse_report(b'[1]', {"n"}) is None
    True
    """
    try:
        report = json.loads(data)
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("nonce") not in wanted:
        return None
    for field, kind in fields.items():
        value = report.get(field)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            report[field] = value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            return None
    if "port" in fields and not 0 < report["port"] < 65536:
        return None
    return report


def collect(
    listener: socket.socket,
    probes: list[Probe],
    timeout: float,
    fields: dict[str, type] = REPORT_FIELDS,
) -> dict[str, dict]:
    """Reports by nonce until all are in or ``timeout`` passes; the first valid one wins.

    Connections are read side by side (a slow or silent client holds up nobody), each
    for 10 s at most; a report gets the address it came from (``peer``) and when it came.
    """
    wanted = {probe.nonce for probe in probes}
    reports: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    listener.setblocking(False)
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        pending: dict[socket.socket, tuple[bytes, float, str]] = {}
        while wanted - set(reports) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                if key.fileobj is listener:
                    with contextlib.suppress(OSError):
                        connection, peer = listener.accept()
                        connection.setblocking(False)
                        pending[connection] = (b"", time.monotonic() + 10, peer[0])
                        selector.register(connection, selectors.EVENT_READ)
                    continue
                connection = key.fileobj
                data, until, peer = pending[connection]
                try:
                    chunk = connection.recv(4096)
                except OSError:
                    chunk = b""
                data += chunk
                if chunk and not data.endswith(b"\n") and len(data) < 65536:
                    pending[connection] = (data, until, peer)
                    continue
                selector.unregister(connection)
                connection.close()
                del pending[connection]
                report = parse_report(data, wanted - set(reports), fields)
                if report is not None:
                    report["peer"], report["received"] = peer, time.time()
                    reports[report["nonce"]] = report
            for connection, (_, until, _) in list(pending.items()):
                if time.monotonic() > until:  # too slow: dropped
                    selector.unregister(connection)
                    connection.close()
                    del pending[connection]
        for connection in pending:
            connection.close()
    return reports


def node_port_answer(address: str, port: int, nonce: str) -> str:
    """What the node's probe port answers to ``nonce``, or why it could not be reached."""
    try:
        with socket.create_connection((address, port), timeout=10) as connection:
            connection.settimeout(10)
            connection.sendall(nonce.encode())
            return connection.recv(64).decode(errors="replace") or "error: no answer"
    except OSError as exc:
        return f"error: {exc}"


def report_lines(
    probe: Probe,
    report: dict | None,
    home: str,
    home_inode: int | None,
    alt_names: list[str] | None = None,
):
    """``(name, ok, detail)`` for each thing a probe's report shows, fixes included.

    ``alt_names``: with internal SSL, the names session certificates carry; the node's
    name must be one of them (the proxy reaches a session by its node's name).
    """
    name = probe.label
    if report is None:
        return [
            (
                name,
                False,
                f"no report within {REPORT_TIMEOUT} s: the job did not run, or could not reach "
                "the doctor on the hub's connect address; see squeue and the node's slurmd log",
            )
        ]
    node = report.get("node", "?")
    name = f"probe {probe.partition}@{node}"
    lines = []
    try:
        resolved = socket.gethostbyname(node)
    except OSError as exc:
        resolved = f"nothing ({exc})"
    lines.append(
        (f"{name} name", True, f"{node} resolves to {resolved}")
        if resolved == report["peer"]
        else (
            f"{name} name",
            False,
            f"{node} resolves here to {resolved}, but the node's own address is "
            f"{report['peer']}; fix DNS or /etc/hosts so both agree",
        )
    )
    same_home = report.get("home") == home and report.get("home_inode") == home_inode
    lines.append(
        (f"{name} home", True, f"the job sees {home}, the same directory as here")
        if same_home
        else (
            f"{name} home",
            False,
            f"the job sees {report.get('home')} (inode {report.get('home_inode')}), not {home} "
            f"(inode {home_inode}) as here; share /home with the compute nodes",
        )
    )
    broken = {k: v for k, v in (report.get("images") or {}).items() if v != "ok"}
    lines.append(
        (f"{name} images", True, f"{', '.join(report.get('images') or {}) or 'none'} import")
        if not broken
        else (
            f"{name} images",
            False,
            "; ".join(f"{k} does not import on {node} ({v})" for k, v in sorted(broken.items()))
            + "; build the image environments there (make images) or share their directory",
        )
    )
    hub = report.get("hub")
    lines.append(
        (f"{name} reaches hub", True, "the job connects to the hub's API")
        if hub == "ok"
        else (
            f"{name} reaches hub",
            False,
            f"the job cannot connect to the hub's API ({hub}); set hub.hub_ip and "
            "hub.hub_connect_ip to an address the compute nodes reach, and open that port",
        )
    )
    answer = node_port_answer(report["peer"], report["port"], probe.nonce)
    lines.append(
        (f"{name} reached from hub", True, f"port {report.get('port')} on {node} answers")
        if answer == probe.answer
        else (
            f"{name} reached from hub",
            False,
            f"the hub cannot reach port {report.get('port')} on {node} ({answer}); sessions "
            "listen on such ports: let the hub host reach the nodes' ports 1024-65535",
        )
    )
    if alt_names is not None:
        patterns = [n.split(":", 1)[1] for n in alt_names if n.startswith("DNS:")]
        covered = node == "localhost" or any(fnmatch.fnmatch(node, p) for p in patterns)
        lines.append(
            (f"{name} certificate", True, f"session certificates name {node}")
            if covered
            else (
                f"{name} certificate",
                False,
                f"with internal SSL the proxy reaches sessions on {node} by that name, but "
                f"session certificates do not carry it; add DNS:{node} (or a wildcard) to "
                "hub.internal_ssl_alt_names",
            )
        )
    skew = report["received"] - report["time"]
    lines.append(
        (f"{name} clock", True, f"within {abs(skew):.1f} s of the hub's")
        if abs(skew) <= MAX_CLOCK_SKEW
        else (
            f"{name} clock",
            False,
            f"{node}'s clock is {abs(skew):.1f} s off the hub's (at most {MAX_CLOCK_SKEW:.0f} s); "
            "run NTP (chrony) on every node",
        )
    )
    return lines
