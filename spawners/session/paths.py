"""Where a session keeps its files in its user's home: one directory per server."""

from __future__ import annotations


def session_dir(home: str, server_name: str) -> str:
    """The per-server directory in a user's home: ``~/.factorylab/servers/<server>``."""
    return f"{home.rstrip('/')}/.factorylab/servers/{server_name or 'default'}"


def job_log_dir(home: str, server_name: str) -> str:
    """The session's log directory: ``~/.factorylab/servers/<server>/logs`` (0700)."""
    return f"{session_dir(home, server_name)}/logs"
