"""What ``factorylab doctor`` reports (one line a check) and how it runs commands."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """``OK   name: detail`` or ``FAIL name: detail``."""
        return f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass(frozen=True)
class Ran:
    """What a command printed, and how it ended (127: not found; 124: timed out)."""

    returncode: int
    stdout: str
    stderr: str


Runner = Callable[..., Ran]
"""``runner(argv, stdin="")``: how the doctor runs a command."""


def run(argv: list[str], stdin: str = "", timeout: float = 30) -> Ran:
    """Run ``argv`` without a shell; a missing program or a timeout is a result too."""
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        return Ran(127, "", f"{argv[0]}: not found")
    except subprocess.TimeoutExpired:
        return Ran(124, "", f"{argv[0]}: no answer within {timeout:.0f} s")
    return Ran(done.returncode, done.stdout, done.stderr)


def first_line(text: str) -> str:
    """The first line of ``text``, at most 200 characters."""
    return (text.strip().splitlines() or [""])[0][:200]
