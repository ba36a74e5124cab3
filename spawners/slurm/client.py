"""The only module that runs Slurm commands. Results are typed.

Submitting and cancelling run as the session's user through ``sudo -n -u USER``,
with argument vectors (never a shell), so no value can become a command. Reading
the queue runs as the hub's own user: one ``squeue --json`` serves every session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from spawners.site.model import Site
from spawners.site.types import SLURM_NAME, is_valid_username
from spawners.slurm.jobs import SlurmJob

log = logging.getLogger("factorylab.slurm.client")


class SlurmError(RuntimeError):
    """A Slurm command failed. ``transient`` marks controller outages and timeouts."""

    def __init__(self, message: str, *, transient: bool = False):
        self.transient = transient
        super().__init__(message)


_TRANSIENT_MARKERS = (
    "Unable to contact slurm controller",
    "Socket timed out",
    "Connection refused",
    "Zero Bytes were transmitted",
    "slurm_load_jobs error",
)


@dataclass(frozen=True)
class CommandResult:
    """What a finished command printed."""

    returncode: int
    stdout: str
    stderr: str


#: Seconds a timed-out command gets to end after each of SIGTERM and SIGKILL.
KILL_GRACE = 2.0


async def _end(proc: asyncio.subprocess.Process) -> None:
    """End a timed-out command and its forks, waiting at most ``2 * KILL_GRACE`` s.

    SIGTERM reaches the whole process group; sudo also relays it to the command it
    runs as the user (which the hub may not signal itself). Python waits for a
    process's pipes to close, and a fork that survives both signals would keep them
    open for ever: the wait is bounded, and such a straggler is left to end alone.
    """
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            proc.send_signal(signum)
        try:
            await asyncio.wait_for(proc.wait(), KILL_GRACE)
            return
        except TimeoutError:
            continue


def _is_job_id(text: str) -> bool:
    return text.isascii() and text.isdigit()


EXTEND_HELPER = "/usr/local/sbin/factorylab-extend"

#: Told of every finished command: ``(verb, result, seconds)``, where ``verb`` is the
#: command's file name (``squeue``) and ``result`` is ``ok``, ``error`` or ``timeout``.
CommandObserver = Callable[[str, str, float], None]


def command_verb(argv: Sequence[str], sudo: str) -> str:
    """The Slurm command an argument vector runs, past ``sudo -n -u USER --``.

    >>> command_verb(["/usr/bin/sudo", "-n", "-u", "ann", "--", "/usr/bin/sbatch"], "/usr/bin/sudo")
    'sbatch'
    """
    if argv and argv[0] == sudo and "--" in argv:
        argv = argv[list(argv).index("--") + 1 :]
    return os.path.basename(argv[0]) if argv else ""


class SlurmClient:
    """Runs sbatch, scancel and squeue for the hub.

    :param bin_dir: directory holding the Slurm commands.
    :param sudo: path of sudo, used to act as the session's user.
    :param timeout: seconds before a command is killed and reported as transient.
    :param operator: Slurm's SlurmUser, as whom the time-limit helper runs.

    ``observers`` (shared by every client of the process) are told of each command.
    """

    observers: ClassVar[list[CommandObserver]] = []

    def __init__(
        self,
        bin_dir: str = "/usr/bin",
        sudo: str = "/usr/bin/sudo",
        timeout: float = 30,
        operator: str = "slurm",
    ):
        self.bin_dir = bin_dir
        self.sudo = sudo
        self.timeout = timeout
        self.operator = operator

    @classmethod
    def for_site(cls, site: Site) -> SlurmClient:
        """A client with the site file's Slurm paths and timeout."""
        slurm = site.slurm
        return cls(slurm.bin_dir, slurm.sudo, slurm.command_timeout, slurm.operator)

    def _command(self, verb: str) -> str:
        return os.path.join(self.bin_dir, verb)

    def _as_user(self, user: str, argv: Sequence[str]) -> list[str]:
        if not is_valid_username(user):
            raise SlurmError(f"refusing to act as {user[:40]!r}: not a plain Unix user name")
        return [self.sudo, "-n", "-u", user, "--", *argv]

    async def run(self, argv: Sequence[str], stdin: str | None = None) -> CommandResult:
        """Run one command without a shell. Raises :class:`SlurmError` on failure."""
        started, outcome = time.monotonic(), "error"
        try:
            result = await self._run(argv, stdin)
            outcome = "ok"
            return result
        except SlurmError as exc:
            outcome = "timeout" if "did not answer within" in str(exc) else "error"
            raise
        finally:
            verb, seconds = command_verb(argv, self.sudo), time.monotonic() - started
            for observer in self.observers:
                try:
                    observer(verb, outcome, seconds)
                except Exception:  # a broken observer must never fail a Slurm command
                    log.exception("a Slurm command observer failed")

    async def _run(self, argv: Sequence[str], stdin: str | None) -> CommandResult:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, so its forks can be ended too
            )
        except OSError as exc:
            raise SlurmError(f"cannot run {argv[0]}: {exc.strerror}") from None
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), self.timeout
            )
        except TimeoutError:
            await _end(proc)
            raise SlurmError(
                f"{os.path.basename(argv[-1] if argv[0] == self.sudo else argv[0])} "
                f"did not answer within {self.timeout:.0f} s",
                transient=True,
            ) from None
        result = CommandResult(
            proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )
        if result.returncode != 0:
            message = (
                result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}"
            )
            transient = any(marker in message for marker in _TRANSIENT_MARKERS)
            raise SlurmError(message, transient=transient)
        return result

    async def submit(self, script: str, user: str) -> str:
        """Submit a batch script as ``user``; return the job id."""
        result = await self.run(
            self._as_user(user, [self._command("sbatch"), "--parsable"]), stdin=script
        )
        job_id = (
            result.stdout.strip().splitlines()[-1].split(";")[0] if result.stdout.strip() else ""
        )
        if not _is_job_id(job_id):
            raise SlurmError(f"sbatch printed no job id: {result.stdout.strip()[:200]!r}")
        return job_id

    async def cancel(self, job_id: str, user: str) -> None:
        """Cancel a job as its owner. Cancelling a job that already ended is not an error."""
        if not _is_job_id(job_id):
            raise SlurmError(f"not a job id: {job_id[:40]!r}")
        try:
            await self.run(self._as_user(user, [self._command("scancel"), job_id]))
        except SlurmError as exc:
            if "Invalid job id" in str(exc) or "already completing or completed" in str(exc):
                return
            raise

    async def extend(self, job_id: str, minutes: int, helper: str = EXTEND_HELPER) -> None:
        """Set a session job's time limit to ``minutes``, as the operator.

        Users cannot raise their own limit in Slurm. The hub may run exactly one command
        as Slurm's operator account (never as root) for it: ``helper``, which checks that
        the job is a FactoryLab session.
        """
        if not _is_job_id(job_id) or not 0 < minutes < 10**6:
            raise SlurmError(f"not a job id and time limit: {job_id[:40]!r} {minutes!r}")
        await self.run(self._as_user(self.operator, [helper, job_id, str(minutes)]))

    async def cancel_named(self, name: str, user: str) -> None:
        """Cancel every job of ``user`` called ``name`` (none is not an error)."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}", name):
            raise SlurmError(f"not a plain job name: {name[:40]!r}")
        await self.run(
            self._as_user(user, [self._command("scancel"), f"--user={user}", f"--name={name}"])
        )

    async def _json(self, verb: str) -> dict:
        """Run ``VERB --json``; its payload, or a transient error if it reports one."""
        result = await self.run([self._command(verb), "--json"])
        try:
            payload = json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise SlurmError(f"{verb} --json printed invalid JSON: {exc}", transient=True) from None
        errors = payload.get("errors") or []
        if errors:
            raise SlurmError(f"{verb} reported: {errors}", transient=True)
        return payload

    async def queue(self) -> list[SlurmJob]:
        """Every job the controller still knows, from one ``squeue --json`` call."""
        payload = await self._json("squeue")
        return [SlurmJob.from_json(raw) for raw in payload.get("jobs", [])]

    async def nodes(self) -> list[dict]:
        """Every node with its CPUs, GRES and partitions, from one ``sinfo --json`` call."""
        return list((await self._json("sinfo")).get("nodes", []))

    async def reservations(self) -> str:
        """``scontrol -o show reservation``: one line per reservation."""
        result = await self.run([self._command("scontrol"), "-o", "show", "reservation"])
        return result.stdout

    async def associations(self, user: str) -> list[str]:
        """The accounts ``user`` has associations with (needs Slurm accounting)."""
        if not is_valid_username(user):
            raise SlurmError(f"not a plain Unix user name: {user[:40]!r}")
        result = await self.run(
            [
                self._command("sacctmgr"),
                "--noheader",
                "--parsable2",
                "show",
                "associations",
                "where",
                f"users={user}",
                "format=Account",
            ]
        )
        names = [line.strip() for line in result.stdout.splitlines()]
        return list(dict.fromkeys(name for name in names if re.fullmatch(SLURM_NAME, name)))
