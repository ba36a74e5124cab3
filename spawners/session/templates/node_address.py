"""Runs inside FactoryLab jobs (sessions and kernels; the job scripts join it before the
rest): how other nodes reach this one. Stdlib only."""

import os
import socket


def node_address():
    """The address the node's host name resolves to: what other nodes use to reach it."""
    name = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    for candidate in (socket.gethostname(), name):
        try:
            return socket.gethostbyname(candidate)
        except OSError:
            continue
    return "127.0.0.1"
