"""The session event log: one JSON object per line, for Loki, ELK or ``jq``.

Each line has ``time`` (ISO 8601, UTC), ``event``, ``user``, ``server``, ``job``,
``node`` and ``seconds`` (since the session's submission), plus the event's own
fields (``cause``, ``reason``, ``message``…). The file is rotated by size, into
backups ``make up`` created (:class:`CopyingRotatingHandler`).
"""

from __future__ import annotations

import datetime
import itertools
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


class CopyingRotatingHandler(logging.handlers.RotatingFileHandler):
    """Size-rotated, in files that already exist: no file is created, renamed or removed.

    The event log lives in the daemons' log directory, which is root's: the hub may
    write the files ``make up`` made for it (``events.log``, ``events.log.1`` …) but not
    the directory, so that it can never plant a link there. A rollover copies each file's
    content one place down and empties the first; a missing backup ends the chain. Every
    open refuses a symbolic link.
    """

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        return open(fd, "a", encoding=self.encoding, closefd=True)

    def doRollover(self) -> None:
        """Shift the content of each file one place down, then empty the current one.

        If a backup cannot be read or written (a full disk, say), rotation stops for good
        and events keep going to the current file: losing backups beats losing events.
        """
        if self.stream:
            self.stream.close()
            self.stream = None
        chain = []  # the current file and the backups that exist, in order
        for number in range(self.backupCount + 1):
            name = f"{self.baseFilename}.{number}" if number else self.baseFilename
            if not os.path.isfile(name) or os.path.islink(name):
                break
            chain.append(name)
        try:
            if not all(os.access(name, os.R_OK | os.W_OK) for name in chain):
                raise PermissionError("a backup is not the hub's to read and write")
            for newer, older in reversed(list(itertools.pairwise(chain))):
                _copy_over(newer, older)
            os.close(os.open(self.baseFilename, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW))
        except OSError as exc:
            self.maxBytes = 0  # rotation off: shouldRollover() is False from now on
            log_problem = logging.getLogger("factorylab.hub")
            log_problem.error("The event log %s no longer rotates: %s", self.baseFilename, exc)
        self.stream = self._open()


def _copy_over(source: str, target: str) -> None:
    """Replace the content of the existing file ``target`` with ``source``'s."""
    with (
        open(os.open(source, os.O_RDONLY | os.O_NOFOLLOW), "rb") as reader,
        open(os.open(target, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW), "wb") as writer,
    ):
        while chunk := reader.read(2**20):
            writer.write(chunk)


def configure(path: str, max_bytes: int = 10 * 2**20, backups: int = 5) -> str | None:
    """Send events to ``path``, rotated at ``max_bytes`` into ``path.1`` … ``path.N``.

    The files must exist and be the hub's to write (``make up`` makes them). Returns
    None, or why the log cannot be written: the hub then runs without it, since a
    missing log must not keep users out.
    """
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    if not path:
        return None
    try:
        handler = CopyingRotatingHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=False
        )
    except OSError as exc:
        return f"the event log {path} cannot be opened ({exc.strerror}); make up creates it"
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    return None
