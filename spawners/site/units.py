"""Parsing of the quantities Slurm speaks in: memory sizes and walltimes.

Both parsers are strict: they accept the spellings Slurm documents and nothing else,
so a value that passes can be written into a batch script as the canonical form.
"""

from __future__ import annotations

import re

_MEMORY = re.compile(r"^(\d{1,9})\s*([KMGT]?)(?:i?B)?$", re.IGNORECASE | re.ASCII)
_MEMORY_FACTORS_MIB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}

# Slurm's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_WALLTIME = re.compile(
    r"^(?:(?P<days>\d{1,3})-(?P<dh>\d{1,2})(?::(?P<dm>\d{1,2})(?::(?P<ds>\d{1,2}))?)?"
    r"|(?P<h>\d{1,4}):(?P<m>\d{1,2}):(?P<s>\d{1,2})"
    r"|(?P<mm>\d{1,6})(?::(?P<ms>\d{1,2}))?)$",
    re.ASCII,
)


def parse_memory_mib(text: str | int) -> int:
    """Return a memory size in MiB.

    >>> parse_memory_mib("2G"), parse_memory_mib("512M"), parse_memory_mib(1024)
    (2048, 512, 1024)

    A bare number means MiB, as in Slurm's ``--mem``. Raises ``ValueError`` with a
    sentence a user can act on.
    """
    if isinstance(text, bool):
        raise ValueError("memory must be a size such as 4G or 512M")
    if isinstance(text, int):
        mib = text
    else:
        match = _MEMORY.match(str(text).strip())
        if not match:
            raise ValueError(f"{str(text)[:40]!r} is not a memory size; write it like 4G or 512M")
        number, unit = int(match.group(1)), match.group(2).upper()
        mib = int(number * _MEMORY_FACTORS_MIB[unit])
    if mib <= 0:
        raise ValueError("memory must be more than 0")
    return mib


def format_memory(mib: int) -> str:
    """Return the shortest exact Slurm spelling of a size in MiB (``2048`` → ``2G``)."""
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def parse_walltime_seconds(text: str | int) -> int:
    """Return a walltime in seconds, from any of Slurm's ``--time`` forms.

    >>> [parse_walltime_seconds(t) for t in ("02:00:00", "1-00", 90)]
    [7200, 86400, 5400]

    A bare number means minutes, as in Slurm.
    """
    if isinstance(text, bool):
        raise ValueError("walltime must look like 02:00:00")
    if isinstance(text, int):
        seconds = text * 60
    else:
        match = _WALLTIME.match(str(text).strip())
        if not match:
            raise ValueError(
                f"{str(text)[:40]!r} is not a walltime; write it as HH:MM:SS, e.g. 02:00:00"
            )
        parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
        if "days" in parts:
            seconds = (
                parts["days"] * 86400
                + parts["dh"] * 3600
                + parts.get("dm", 0) * 60
                + parts.get("ds", 0)
            )
        elif "h" in parts:
            seconds = parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
        else:
            seconds = parts["mm"] * 60 + parts.get("ms", 0)
    if seconds <= 0:
        raise ValueError("walltime must be more than 0")
    return seconds


def format_walltime(seconds: int) -> str:
    """Return Slurm's ``D-HH:MM:SS`` (or ``HH:MM:SS``) spelling of a walltime."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock
