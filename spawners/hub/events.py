"""The session event log: one JSON object per line, for Loki, ELK or ``jq``.

Each line has ``time`` (ISO 8601, UTC), ``event``, ``user``, ``server``, ``job``,
``node`` and ``seconds`` (since the session's submission), plus the event's own
fields (``cause``, ``reason``, ``message``…). The file is rotated by size.
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import os
from collections import deque
from dataclasses import dataclass

#: The events a session goes through.
EVENTS = (
    "submitted",
    "pending_reason_changed",
    "running",
    "ready",
    "failed",
    "stopped",
    "culled",
    "extended",
)

log = logging.getLogger("factorylab.events")
log.propagate = False  # the hub's own log keeps its own lines
log.setLevel(logging.INFO)


@dataclass(frozen=True)
class Failure:
    """A failed spawn as the admin view lists it."""

    time: str
    user: str
    server: str
    job: str
    cause: str
    message: str


#: The last failures, newest last (memory only; the event log keeps them all).
recent_failures: deque[Failure] = deque(maxlen=20)


def now_iso() -> str:
    """The current time, ISO 8601 in UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def record(event: str, **fields: object) -> dict:
    """Write one event line (if the log is configured) and return it as a dict."""
    if event not in EVENTS:
        raise ValueError(f"unknown session event {event!r}")
    line = {"time": now_iso(), "event": event, **fields}
    if event == "failed":
        recent_failures.append(
            Failure(
                line["time"],
                str(fields.get("user", "")),
                str(fields.get("server", "")),
                str(fields.get("job", "")),
                str(fields.get("cause", "")),
                str(fields.get("message", "")),
            )
        )
    log.info("%s", json.dumps(line, sort_keys=False, default=str))
    return line


def configure(path: str, max_bytes: int = 10 * 2**20, backups: int = 5) -> str | None:
    """Send events to ``path``, rotated at ``max_bytes`` with ``backups`` old files.

    Returns None, or why the log cannot be written (the hub then runs without it:
    a missing log directory must not keep users out).
    """
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    if not path:
        return None
    directory = os.path.dirname(path) or "."
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"the event log's directory {directory} is missing or not writable by the hub"
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    return None
