"""FactoryLab's Slurm spawner: one JupyterLab session is one Slurm job.

``start`` validates the user's choice, renders the batch script, submits it as the
user, and waits for the job to report its port. ``poll``, the start-wait and
``progress`` read the hub-wide queue snapshot (:mod:`spawners.slurm.queue`); no
spawner runs ``squeue`` on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import pwd
import socket
import time

import batchspawner
from traitlets import Any, Dict, Float, Instance, Integer, List, Unicode, default

from spawners.hub import observe
from spawners.hub import state as saved
from spawners.hub.errors import SessionError
from spawners.hub.job_inputs import JobInputsMixin
from spawners.hub.liveness import Liveness
from spawners.hub.options import SessionOptionsMixin, apply_user_options
from spawners.hub.progress import ProgressMixin
from spawners.hub.session_control import SessionControlMixin
from spawners.hub.target import target_problem
from spawners.session.dask import worker_job_name
from spawners.session.idle import idle_limit
from spawners.session.job import render_job_script
from spawners.session.kernels import kernel_job_name
from spawners.session.messages import (
    EARLY_END,
    STARTING_AT_RESTART,
    explain_ending,
    failure_sentence,
    queue_timeout_sentence,
    submit_refused_sentence,
)
from spawners.session.request import SessionRequest, parse_request
from spawners.slurm.client import SlurmClient, SlurmError
from spawners.slurm.jobs import SlurmJob
from spawners.slurm.queue import JobMonitor
from spawners.slurm.services import shared_monitor


class SlurmSpawner(
    SessionOptionsMixin,
    SessionControlMixin,
    JobInputsMixin,
    ProgressMixin,
    batchspawner.SlurmSpawner,
):
    """Start each user's JupyterLab as a Slurm job, configured from the site file."""

    log_tail_lines = Integer(20, help="How many lines of a failed job's log to show the user.").tag(
        config=True
    )

    env_keep = List(
        ["LANG", "LC_ALL"],
        help="Variables copied from the hub's environment into the session. PATH and "
        "VIRTUAL_ENV are deliberately absent: the session uses its image's environment.",
    ).tag(config=True)

    session_request = Any(None, allow_none=True, help="The validated SessionRequest of this spawn.")
    ended_message = Unicode(
        "",
        help="Why the last session ended outside the hub (state; kept past clear_state so "
        "that the user's next page can show it; cleared by the next start).",
    )
    liveness = Instance(Liveness, args=(), help="What knocks found of the server (not saved).")
    serves_at = Unicode("", help="host:port of the running server (state: the hub knocks there).")
    accepted_options = Dict(
        help="The last user options that passed validation (state; what a plain Start reuses)."
    )
    job_log = Unicode(help="Path of this session job's log, in the user's home (state).")
    log_tail = Unicode(
        "",
        help="The last lines of the job's log, as the job's launcher reported them when its "
        "server failed to start (memory only). The hub never opens a file in a user's home.",
    )
    api_token_id = Integer(
        0,
        help="Database id of this session's server token (state), so the session's own "
        "reports are recognised after a hub restart, when the plain token is no longer known.",
    )
    kernel_activity = Float(
        0.0, help="Epoch seconds of the session's last kernel activity, as it reported (state)."
    )
    idle_limit = Integer(
        None, allow_none=True, help="Seconds without kernel activity before culling (state)."
    )
    _workers_cancelled_for = ""
    submitted_at = Integer(0, help="Epoch seconds of the submission (state).")

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return apply_user_options

    def accept_request(self, request: SessionRequest, user_options: dict) -> None:
        """Keep a validated choice for the next :meth:`start` (the options hook calls this)."""
        self.session_request = request
        self.accepted_options = dict(user_options or {})

    @default("start_timeout")
    def _start_timeout_default(self) -> int:
        # JupyterHub's outer bound; the queue wait and the server start are limited
        # separately (site file: slurm.max_queue_wait, slurm.server_start_timeout).
        return self.site.slurm.max_queue_wait + self.site.slurm.server_start_timeout + 60

    @default("ip")
    def _default_ip(self) -> str:
        # Empty: the session listens on its compute node's own address, which only the
        # job knows (the launcher looks it up); the proxy gets it from Slurm's batch host.
        return ""

    @default("poll_interval")
    def _poll_interval_default(self) -> int:
        # poll() only reads the shared snapshot: polling often costs the scheduler nothing.
        return 5

    # -- plumbing ------------------------------------------------------------
    @property
    def monitor(self) -> JobMonitor:
        """The hub-wide job monitor."""
        return shared_monitor(self.site)

    @property
    def slurm(self) -> SlurmClient:
        """The hub's Slurm client."""
        return self.monitor.client

    def get_state(self) -> dict:
        """batchspawner's job id, plus the fields of :class:`~spawners.hub.state.SavedState`."""
        return {**super().get_state(), **saved.save(self, self.job_id)}

    def load_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` saved."""
        super().load_state(state)
        saved.restore(self, state)
        if self.job_id:
            self.monitor.claim(self.job_id)

    def clear_state(self) -> None:
        """Forget the job (but not why it ended, nor the accepted options)."""
        if self.job_id:
            self.monitor.release(self.job_id)
            self.monitor.mark_settled(self.job_id)
        if self.api_token_id and not self.api_token:
            saved.revoke_server_token(self.db, self.api_token_id, self.user.name)
        super().clear_state()
        self.job_log = self.log_tail = self.serves_at = ""
        self.submitted_at = 0
        self.api_token_id = 0
        self.kernel_activity = 0.0
        self.idle_limit = None

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        """Submit the session job and wait until its server has a port."""
        observe.starting(self)
        try:
            return await self._start()
        except SessionError as exc:
            observe.failed(self, exc.reason, exc.message)
            raise
        except Exception as exc:
            observe.failed(self, "error", str(exc))
            raise

    async def _start(self) -> tuple[str, int]:
        site = self.site
        request: SessionRequest = self.session_request or parse_request({}, site)
        self.ip, self.port = "", 0  # the new job's node decides (see _default_ip)
        self.ended_message, self.liveness = "", Liveness()
        self.idle_limit = idle_limit(site, request)
        self.kernel_activity = time.time()
        self._port_future = asyncio.get_running_loop().create_future()
        spec = self.job_spec(request, await self.kernelspecs(request))
        script = render_job_script(spec)
        self.api_token_id = saved.server_token_id(self.db, self.api_token)
        submission = asyncio.ensure_future(self.slurm.submit(script, self.user.name))
        try:
            self.job_id = await asyncio.shield(submission)
        except asyncio.CancelledError:
            # The user cancelled while sbatch ran: never leave its job behind.
            with contextlib.suppress(Exception):
                await self.slurm.cancel(await submission, self.user.name)
            raise
        except SlurmError as exc:
            raise SessionError(
                submit_refused_sentence(str(exc), exc.transient),
                reason="slurm-unavailable" if exc.transient else "slurm-refused",
                status_code=503 if exc.transient else 400,
            ) from None
        self.monitor.claim(self.job_id)
        self.job_log = f"{spec.log_dir}/job-{self.job_id}.log"
        self.submitted_at = int(time.time())
        observe.submitted(self)
        self.log.info("Submitted session job %s for %s (%s)", self.job_id, self.user.name, request)
        self.monitor.mark_starting(self.job_id)
        try:
            port = await self._wait_for_port()
            job = await self._running_job()
        finally:
            self.monitor.mark_settled(self.job_id)
        self.ip, self.port = await self._check_target(job.batch_host, port), port
        self.serves_at = f"{self.ip}:{self.port}"
        observe.ready(self, job)
        self.log.info("Session job %s serves on %s:%s", self.job_id, self.ip, self.port)
        return self.ip, self.port

    async def _wait_for_port(self) -> int:
        """Wait for the port; fail at once if the job ends, or waits or starts too long."""
        limits = self.site.slurm
        submitted = time.monotonic()
        running_since = None
        while True:
            done, _ = await asyncio.wait({self._port_future}, timeout=self.monitor.interval)
            if done:
                return self._port_future.result()
            now = time.monotonic()
            job = self.monitor.snapshot.jobs.get(self.job_id)
            observe.job_seen(self, job)
            if job is not None and not job.active:
                raise SessionError(self.failure_message(job, EARLY_END), reason="job-ended")
            if job is None and self.monitor.snapshot.taken_at > submitted + 5:
                raise SessionError(self.failure_message(None, EARLY_END), reason="job-ended")
            if job is not None and job.running and running_since is None:
                running_since = now
            if running_since is None and now - submitted > limits.max_queue_wait:
                raise SessionError(
                    queue_timeout_sentence(limits.max_queue_wait, job.reason if job else None),
                    reason="queue-timeout",
                )
            if running_since is not None and now - running_since > limits.server_start_timeout:
                raise SessionError(
                    self.failure_message(
                        job,
                        f"started, but its server did not listen within "
                        f"{limits.server_start_timeout} s",
                    ),
                    reason="server-start-timeout",
                )

    async def _check_target(self, host: str, port: int) -> str:
        """The address the proxy may use for the session; refuse a port that is not its own.

        The node's name is resolved once, to IPv4 (where the server listens), and that
        address is what the proxy gets: a name resolving to another family as well would
        let another user on the node listen there (``[::1]:port``) and take the route.
        With internal SSL the name stays, since the certificates name hosts.
        """
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, family=socket.AF_INET)
        except OSError as exc:
            message = f"The hub cannot resolve your session's node {host}: {exc}"
            raise SessionError(message, reason="unresolvable-node") from None
        address = infos[0][4][0]
        uid = pwd.getpwnam(self.user.name).pw_uid
        problem = await loop.run_in_executor(None, target_problem, address, port, uid)
        if problem:
            self.log.warning("Session job %s of %s: %s", self.job_id, self.user.name, problem)
            with contextlib.suppress(SlurmError):
                await self.slurm.cancel(self.job_id, self.user.name)
            raise SessionError(
                f"Your session job {self.job_id} reported a port the hub will not use: "
                f"{problem}. The job was cancelled; start again.",
                reason="foreign-target",
            )
        return host if self.site.hub.internal_ssl else address

    async def _running_job(self) -> SlurmJob:
        """The job's record once Slurm shows it running (it has reported its port)."""
        newer_than = None
        for _ in range(10):
            snapshot = await self.monitor.fresh_snapshot(newer_than=newer_than)
            job = snapshot.jobs.get(self.job_id)
            if job is not None and job.batch_host:
                return job
            newer_than = snapshot.taken_at
            await asyncio.sleep(0.2)
        raise SessionError(
            f"Slurm does not show session job {self.job_id} running on any node.",
            reason="job-not-running",
        )

    def failure_message(self, job: SlurmJob | None, what: str) -> str:
        """The sentence for a session that ``what`` (see :func:`failure_sentence`)."""
        tail = self.log_tail.splitlines()[-self.log_tail_lines :] if self.log_tail else []
        return failure_sentence(self.job_id, job, what, tail, self.job_log)

    async def poll(self) -> int | None:
        """None while the job is pending or running; its exit status once it ended.

        Read from the shared snapshot. While the scheduler does not answer, the
        session is reported running: an outage is not a reason to drop it.
        """
        if not self.job_id:
            return 0
        try:
            snapshot = await self.monitor.current_snapshot(timeout=self.site.slurm.command_timeout)
        except TimeoutError:
            return None
        if not self.monitor.healthy:
            silent = time.monotonic() - (self.monitor.error_since or time.monotonic())
            if silent > self.site.slurm.unknown_state_grace:
                self.log.error(
                    "Slurm has not answered for %.0f s: state of %s's job %s is unknown; "
                    "keeping the session (%s)",
                    silent,
                    self.user.name,
                    self.job_id,
                    self.monitor.last_error,
                )
            return None
        job = snapshot.jobs.get(self.job_id)
        if job is None:
            if snapshot.taken_wall < self.submitted_at + 2:
                return None  # the snapshot predates the submission
            self.log.warning("Session job %s of %s is gone from Slurm", self.job_id, self.user.name)
            self.ended_message = explain_ending(None)
            await self._session_ended("gone")
            return 1
        if job.active:
            if not self.serves_at and getattr(self, "_port_future", None) is None:
                # Starting when the hub restarted: the job never said where its server
                # listens, so no hub can take it over (JupyterHub would wait for an
                # address it does not know). End it; the user or a course starts again.
                self.log.warning("Session job %s was starting at the hub's restart", job.job_id)
                return await self._end_here(STARTING_AT_RESTART, "hub-restart")
            if self.liveness.lost_node:
                return 1  # JupyterHub polls again before it lets the server go
            lost = await self.liveness.lost(self.site, self.monitor, job, self.serves_at)
            if lost is None:
                return None
            return await self._end_here(lost, "node-lost")
        self.ended_message = explain_ending(job)
        self.log.info(
            "Session job %s ended: %s", self.job_id, self.failure_message(job, "has ended")
        )
        await self._session_ended(job.state.lower())
        return job.exit_code if job.exit_code and job.exit_code > 0 else 1

    async def _end_here(self, message: str, cause: str) -> int:
        """JupyterHub will not call stop() for a server its poll ends: cancel here."""
        self.ended_message = message
        with contextlib.suppress(SlurmError):
            await self.slurm.cancel(self.job_id, self.user.name)
        await self._session_ended(cause)
        return 1

    async def _session_ended(self, cause: str) -> None:
        """The job ended on its own: JupyterHub will not call stop(), so end its workers."""
        observe.stopped(self, cause)
        if self._workers_cancelled_for != self.job_id:
            self._workers_cancelled_for = self.job_id
            await self.cancel_dask_workers()

    async def stop(self, now: bool = False) -> None:
        """Cancel the job and its Dask workers; unless ``now``, wait up to 10 s for its end.

        JupyterHub calls this when the user stops the server, when the culler or an
        admin stops it, and when a poll finds the job ended, so the session's Dask
        worker jobs never outlive it.
        """
        if not self.job_id:
            return
        self.log.info("Cancelling session job %s of %s", self.job_id, self.user.name)
        await self.slurm.cancel(self.job_id, self.user.name)
        observe.stopped(self, "requested")
        await self.cancel_dask_workers()
        if now:
            return
        if not await self.monitor.wait_ended(self.job_id, 10):
            self.log.warning("Session job %s did not end within 10 s of scancel", self.job_id)

    # -- time left, extension, kernel activity --------------------------------------
    async def cancel_dask_workers(self) -> None:
        """Cancel the jobs this server started (by name): its SLURMCluster()'s Dask
        workers and its kernel jobs. None of them outlives its session."""
        names = []
        if self.site.kernels and self.job_id:
            names.append(kernel_job_name(self.site.slurm.job_name, self.job_id))
        if self.site.dask.enabled:
            names.append(worker_job_name(self.user.name, self.name))
        for name in names:
            try:
                await self.slurm.cancel_named(name, self.user.name)
            except SlurmError as exc:
                self.log.warning("Could not cancel %s's jobs %s: %s", self.user.name, name, exc)


__all__ = ["SlurmSpawner"]
