"""Where the proxy may send a user's traffic: only to the session's own server.

A session job reports its port; its host comes from Slurm (the job's batch host). A
job is the user's code, so the port can be anything: the hub's own API, the proxy, or
a service another user runs. On the hub's own host the hub can see who listens on a
port (``/proc/net/tcp``, readable by every user) and accepts only a listener of the
session's own user. On a compute node it cannot: there other daemons listen (sshd,
slurmd) and other users' sessions and probes, and a job could point its own route at
one of them. That gains it nothing: a route only carries the job's own user's traffic,
and every session server there asks for that session's own token.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

_LISTEN = "0A"
_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def listener_uids(port: int, tables: Iterable[str] = _TABLES) -> set[int]:
    """The uids that hold a listening TCP socket on ``port`` on this host."""
    uids: set[int] = set()
    for table in tables:
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            listening = len(fields) > 7 and fields[3] == _LISTEN
            if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                uids.add(int(fields[7]))
    return uids


def is_local(address: str) -> bool:
    """Whether ``address`` (an IP) belongs to this host: only then can it be bound here."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def target_problem(address: str, port: int, uid: int, uids: set[int] | None = None) -> str | None:
    """Why the proxy must not send a session's traffic to ``address:port``; None if fine.

    ``uids`` are the owners of the port's listeners on this host (read from /proc when
    not given).

    >>> target_problem("192.0.2.7", 8888, 1001)
    >>> target_problem("127.0.0.1", 8081, 1001, uids={998})
    'port 8081 on this host is not served by your session'
    >>> target_problem("127.0.0.1", 40001, 1001, uids={1001})
    """
    if not is_local(address):
        return None
    owners = listener_uids(port) if uids is None else uids
    if owners != {uid}:
        return f"port {port} on this host is not served by your session"
    return None
