"""What a running session's own reports and the hub's endpoints ask of its spawner.

The port and failure endpoints, kernel-activity reports, the time left and 'extend'
call these methods; the spawner's lifecycle (:mod:`spawners.hub.spawner`) does not.
"""

from __future__ import annotations

import time

from traitlets import HasTraits

from spawners.session.entitlements import partition_limits, unix_groups
from spawners.session.time_left import extension_refusal, time_facts
from spawners.slurm.client import SlurmError


class SessionControlMixin(HasTraits):
    """Reports from a session's job, its time left, and extending it."""

    _max_walltime: tuple[str, int] | None = None  # (job id, seconds): one group lookup a job

    def accept_port(self, port: int) -> bool:
        """Called by the port endpoint; True if this spawner was waiting for a port."""
        future = getattr(self, "_port_future", None)
        if future is None or future.done():
            return False
        future.set_result(port)
        return True

    def accept_log_tail(self, text: str) -> bool:
        """Called by the failure endpoint: the launcher's last log lines (it is failing)."""
        if not self.job_id:
            return False
        self.log_tail = text
        return True

    def server_exited(self) -> None:
        """The job says its server exited: watch the queue closely until its job ends."""
        if self.job_id:
            self.monitor.mark_starting(self.job_id)

    def owns_token(self, token_id: int) -> bool:
        """Whether ``token_id`` is this running session's server token."""
        return bool(self.job_id and self.api_token_id and token_id == self.api_token_id)

    def slurm_session(self) -> SessionControlMixin:
        """This spawner (the profile wrapper answers with its child)."""
        return self

    def record_kernel_activity(self, stamp: float) -> None:
        """Keep the session's latest kernel activity (never moves backwards)."""
        self.kernel_activity = max(self.kernel_activity, stamp)

    def max_walltime(self, partition: str) -> int:
        """The longest this user's session may run in ``partition`` (group limits too).

        Looked up once per job: the status bar of every session asks twice a minute, and
        group lookups can be slow on a directory-backed site.
        """
        if self._max_walltime is None or self._max_walltime[0] != self.job_id:
            limits = partition_limits(self.site, unix_groups(self.user.name)).get(partition)
            self._max_walltime = (self.job_id, limits.max_walltime_seconds if limits else 0)
        return self._max_walltime[1]

    def session_facts(self) -> dict:
        """Time left, the latest end an extension can reach, and the idle policy."""
        job = self.monitor.snapshot.jobs.get(self.job_id) if self.job_id else None
        facts: dict = {
            "job_id": self.job_id,
            "state": job.state if job else None,
            "idle_limit_seconds": self.idle_limit,
            "kernel_activity": self.kernel_activity or None,
            "warnings_at_seconds": sorted(self.site.walltime.warnings, reverse=True),
        }
        if job is not None and job.running and job.end_time:
            facts.update(time_facts(self.site, job, self.max_walltime(job.partition), time.time()))
        return facts

    async def extend(self, by: int) -> dict:
        """Raise the job's time limit by ``by`` seconds, within the site's policy.

        Raises PermissionError (beyond policy; a sentence for the user) or RuntimeError
        (the job is not running, or Slurm refused).
        """
        if not self.site.walltime.allow_extend or by <= 0:
            raise PermissionError(extension_refusal(self.site, None, by, 0))
        snapshot = await self.monitor.fresh_snapshot(timeout=self.site.slurm.command_timeout)
        job = snapshot.jobs.get(self.job_id) if self.job_id else None
        if job is None or not job.running or job.time_limit_minutes is None:
            raise RuntimeError("The session is not running, so it cannot be extended.")
        refusal = extension_refusal(self.site, job, by, self.max_walltime(job.partition))
        if refusal:
            raise PermissionError(refusal)
        try:
            await self.slurm.extend(self.job_id, -(-(job.time_limit_minutes * 60 + by) // 60))
        except SlurmError as exc:
            raise RuntimeError(f"Slurm refused the extension: {exc}") from None
        self.log.info("Extended %s's session job %s by %s s", self.user.name, self.job_id, by)
        await self.monitor.fresh_snapshot(
            newer_than=snapshot.taken_at, timeout=self.site.slurm.command_timeout
        )
        return self.session_facts()
