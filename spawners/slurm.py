"""FactoryLab's Slurm spawner: one JupyterLab session is one Slurm job.

``start`` validates the user's choice, renders the batch script, submits it as the
user, and waits for the job to report its port. ``poll``, the start-wait and
``progress`` read the hub-wide queue snapshot (:mod:`spawners.job_monitor`); no
spawner runs ``squeue`` on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import pwd
import socket
import time
from pathlib import Path

import batchspawner
from jupyterhub import orm
from traitlets import Any, Dict, Float, Integer, List, Unicode, default

from .dask_config import session_dask_config, worker_job_name
from .entitlements import partition_limits, unix_groups
from .idle_policy import idle_limit, server_args
from .job_endings import explain_ending
from .job_monitor import JobMonitor
from .job_script import JobSpec, render_job_script, session_dir
from .pending_reasons import pending_message
from .session_options import SessionOptionsMixin
from .session_request import InvalidRequest, SessionRequest, parse_request
from .session_target import target_problem
from .site import Site
from .slurm_client import SlurmClient, SlurmError, SlurmJob
from .units import format_walltime


def server_token_id(db, token: str) -> int:
    """The database id of a server's API token (0 if there is none)."""
    if db is None or not token:
        return 0
    found = orm.APIToken.find(db, token)
    return found.id if found is not None else 0


def revoke_server_token(db, token_id: int, user: str) -> None:
    """Delete a server token the hub no longer holds in plain text (after a restart).

    JupyterHub deletes a server's token by its value when the server stops; after a hub
    restart it no longer knows the value, and the token would stay valid for ever.
    """
    if db is None:
        return
    found = db.query(orm.APIToken).filter_by(id=token_id).first()
    if found is not None and found.user is not None and found.user.name == user:
        db.delete(found)
        db.commit()


class SessionError(Exception):
    """A spawn failure with a sentence for the user (shown on the spawn page)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.jupyterhub_message = message


_monitors: dict[tuple[str, str], JobMonitor] = {}
EARLY_END = "ended before its server started"


def shared_monitor(site: Site) -> JobMonitor:
    """The hub-wide job monitor for this site's Slurm settings."""
    key = (site.slurm.bin_dir, site.slurm.job_name)
    if key not in _monitors:
        _monitors[key] = JobMonitor(
            SlurmClient.for_site(site),
            site.slurm.job_name,
            active_interval=site.slurm.poll_interval_active,
            steady_interval=site.slurm.poll_interval_steady,
        )
    _monitors[key].orphan_grace = site.slurm.orphan_grace
    return _monitors[key]


KEPT_STATE = ("ended_message", "accepted_options")


async def apply_session_options(spawner: SlurmSpawner, user_options: dict) -> None:
    """JupyterHub's ``apply_user_options`` hook: validate before anything is submitted.

    A refusal is an HTTP 400 whose message names the field and the fix; the API
    caller or the form sees it, and no job is submitted.
    """
    try:
        spawner.session_request = await spawner.validate_options(user_options)
    except InvalidRequest as exc:
        raise spawner.refuse(exc, user_options, spawner.accepted_options) from None
    spawner.accepted_options = dict(user_options or {})
    spawner.refused_options = {}


class SlurmSpawner(SessionOptionsMixin, batchspawner.SlurmSpawner):
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
    _tls_files: dict[str, str] | None = None  # internal SSL: path in the job -> PEM
    _max_walltime: tuple[str, int] | None = None  # (job id, seconds): one group lookup a job
    submitted_at = Integer(0, help="Epoch seconds of the submission (state).")

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return apply_session_options

    @default("start_timeout")
    def _start_timeout_default(self) -> int:
        # JupyterHub's outer bound; the queue wait and the server start are limited
        # separately (site file: slurm.max_queue_wait, slurm.server_start_timeout).
        return self.site.slurm.max_queue_wait + self.site.slurm.server_start_timeout + 60

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
        """Add the log path and submit time to batchspawner's job id."""
        state = super().get_state()
        if self.job_log:
            state["job_log"] = self.job_log
        if self.submitted_at:
            state["submitted_at"] = self.submitted_at
        if self.api_token_id:
            state["api_token_id"] = self.api_token_id
        if self.ended_message:
            state["ended_message"] = self.ended_message
        if self.accepted_options:
            state["accepted_options"] = self.accepted_options
        if self.job_id:
            state["kernel_activity"] = self.kernel_activity
            state["idle_limit"] = self.idle_limit
        return state

    def load_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` saved."""
        super().load_state(state)
        self.job_log = state.get("job_log", "")
        self.submitted_at = state.get("submitted_at", 0)
        self.api_token_id = int(state.get("api_token_id") or 0)
        self.ended_message = state.get("ended_message", "")
        self.accepted_options = state.get("accepted_options", {})
        self.kernel_activity = float(state.get("kernel_activity") or 0.0)
        self.idle_limit = state.get("idle_limit")
        if self.job_id:
            self.monitor.claim(self.job_id)

    def clear_state(self) -> None:
        """Forget the job (but not why it ended, nor the accepted options)."""
        if self.job_id:
            self.monitor.release(self.job_id)
            self.monitor.mark_settled(self.job_id)
        if self.api_token_id and not self.api_token:
            revoke_server_token(self.db, self.api_token_id, self.user.name)
        super().clear_state()
        self.job_log = ""
        self.log_tail = ""
        self.submitted_at = 0
        self.api_token_id = 0
        self.kernel_activity = 0.0
        self.idle_limit = None

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

    def job_spec(self, request) -> JobSpec:
        """Build the batch-script inputs from trusted values."""
        account = pwd.getpwnam(self.user.name)
        image = self.site.images[request.image]
        env = {
            key: value
            for key, value in self.get_env().items()
            if key not in {"PATH", "VIRTUAL_ENV", "HOME", "USER", "SHELL", "PYTHONPATH"}
        }
        env["FACTORYLAB_ACTIVITY_INTERVAL"] = str(self.site.idle.report_every)
        return JobSpec(
            user=self.user.name,
            server_name=self.name,
            request=request,
            job_name=self.site.slurm.job_name,
            workdir=account.pw_dir,
            home=account.pw_dir,
            venv=image.venv,
            server_args=[*self.get_args(), *server_args(self.idle_limit)],
            environment=env,
            apptainer=image.apptainer,
            binds=image.binds,
            dask_config=(
                session_dask_config(self.site, request, self.user.name, self.name, account.pw_dir)
                if self.site.dask.enabled
                else None
            ),
            notebooks=(
                (self.site.notebooks.source, self.site.notebooks.directory)
                if self.site.notebooks.enabled
                else None
            ),
            tls_files=self._tls_files or None,
            signing_key=self.signing_key(),
        )

    def signing_key(self) -> bytes | None:
        """The key session scripts are signed with (None, and a warning, if unreadable)."""
        try:
            return Path(self.site.slurm.signing_key_file).read_bytes().strip() or None
        except OSError as exc:
            self.log.warning("Session scripts go unsigned; extending will be refused: %s", exc)
            return None

    async def move_certs(self, paths: dict) -> dict:
        """Internal SSL: send the session's certificates with its job, into its own home.

        The hub's copies are readable by the hub only, and the hub cannot write into a
        user's home; the launcher writes them there (0600) before the server starts.
        """
        directory = session_dir(pwd.getpwnam(self.user.name).pw_dir, self.name) + "/certs"
        moved, self._tls_files = {}, {}
        names = {"keyfile": "session.key", "certfile": "session.crt", "cafile": "ca.crt"}
        for key, name in names.items():
            moved[key] = f"{directory}/{name}"
            self._tls_files[moved[key]] = Path(paths[key]).read_text()
        return moved

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        """Submit the session job and wait until its server has a port."""
        site = self.site
        request: SessionRequest = self.session_request or parse_request({}, site)
        self.port = 0
        self.ended_message = ""
        self.idle_limit = idle_limit(site, request)
        self.kernel_activity = time.time()
        self._port_future = asyncio.get_running_loop().create_future()
        spec = self.job_spec(request)
        script = render_job_script(spec)
        self.api_token_id = server_token_id(self.db, self.api_token)
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
                "Slurm did not accept your session"
                + (
                    " because the scheduler is not answering; try again in a minute."
                    if exc.transient
                    else f": {exc}"
                )
            ) from None
        self.monitor.claim(self.job_id)
        self.job_log = f"{spec.log_dir}/job-{self.job_id}.log"
        self.submitted_at = int(time.time())
        self.log.info("Submitted session job %s for %s (%s)", self.job_id, self.user.name, request)
        self.monitor.mark_starting(self.job_id)
        try:
            port = await self._wait_for_port()
            job = await self._running_job()
        finally:
            self.monitor.mark_settled(self.job_id)
        self.ip, self.port = await self._check_target(job.batch_host, port), port
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
            if job is not None and not job.active:
                raise SessionError(self.failure_message(job, EARLY_END))
            if job is None and self.monitor.snapshot.taken_at > submitted + 5:
                raise SessionError(self.failure_message(None, EARLY_END))
            if job is not None and job.running and running_since is None:
                running_since = now
            if running_since is None and now - submitted > limits.max_queue_wait:
                raise SessionError(
                    f"Your session waited {format_walltime(limits.max_queue_wait)} in the queue "
                    f"({job.reason if job else 'unknown reason'}) and was withdrawn. Try fewer "
                    "resources or another partition, or come back later."
                )
            if running_since is not None and now - running_since > limits.server_start_timeout:
                raise SessionError(
                    self.failure_message(
                        job,
                        f"started, but its server did not listen within "
                        f"{limits.server_start_timeout} s",
                    )
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
            raise SessionError(message) from None
        address = infos[0][4][0]
        uid = pwd.getpwnam(self.user.name).pw_uid
        problem = await loop.run_in_executor(None, target_problem, address, port, uid)
        if problem:
            self.log.warning("Session job %s of %s: %s", self.job_id, self.user.name, problem)
            with contextlib.suppress(SlurmError):
                await self.slurm.cancel(self.job_id, self.user.name)
            raise SessionError(
                f"Your session job {self.job_id} reported a port the hub will not use: "
                f"{problem}. The job was cancelled; start again."
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
        raise SessionError(f"Slurm does not show session job {self.job_id} running on any node.")

    def failure_message(self, job: SlurmJob | None, what: str) -> str:
        """``Your session job N <what> (state, exit code, reason).`` and its log tail."""
        if job is None:
            head = f"Your session job {self.job_id} {what}; Slurm no longer lists it."
        else:
            details = [f"state {job.state}"]
            if job.exit_code is not None and job.exit_code < 0:
                details.append(f"killed by signal {-job.exit_code}")
            elif job.exit_code is not None:
                details.append(f"exit code {job.exit_code}")
            if job.reason and job.reason != "None":
                details.append(f"reason {job.reason}")
            head = f"Your session job {self.job_id} {what} ({', '.join(details)})."
        lines = self.log_tail.splitlines()[-self.log_tail_lines :]
        if lines:
            return head + " Last lines of its log:\n" + "\n".join(lines)
        if self.job_log:
            return head + f" Its log, if it wrote one, is {self.job_log}."
        return head

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
            await self._session_ended()
            return 1
        if job.active:
            return None
        self.ended_message = explain_ending(job)
        self.log.info(
            "Session job %s ended: %s", self.job_id, self.failure_message(job, "has ended")
        )
        await self._session_ended()
        return job.exit_code if job.exit_code and job.exit_code > 0 else 1

    async def _session_ended(self) -> None:
        """The job ended on its own: JupyterHub will not call stop(), so end its workers."""
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
        await self.cancel_dask_workers()
        if now:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                snapshot = await self.monitor.fresh_snapshot(timeout=5)
            except TimeoutError:
                continue
            job = snapshot.jobs.get(self.job_id)
            if job is None or not job.active:
                return
            await asyncio.sleep(0.5)
        self.log.warning("Session job %s did not end within 10 s of scancel", self.job_id)

    # -- time left, extension, kernel activity --------------------------------------
    def slurm_session(self) -> SlurmSpawner:
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
        if job is None or not job.running or not job.end_time:
            return facts
        left = max(0, job.end_time - int(time.time()))
        reachable = job.start_time + self.max_walltime(job.partition)
        extendable = self.site.walltime.allow_extend and reachable > job.end_time
        facts.update(
            ends_at=job.end_time,
            time_left_seconds=left,
            time_limit=format_walltime((job.time_limit_minutes or 0) * 60),
            extendable_until=reachable if extendable else None,
            extend_by_seconds=min(self.site.walltime.extend_by, reachable - job.end_time)
            if extendable
            else 0,
            warning=self.time_warning(left),
        )
        return facts

    def time_warning(self, left: int) -> str | None:
        """The warning for ``left`` seconds to go, once it is below a warning threshold."""
        passed = [mark for mark in self.site.walltime.warnings if left <= mark]
        if not passed:
            return None
        minutes = max(1, -(-left // 60))
        return (
            f"Your session ends in {minutes} minute{'s' if minutes != 1 else ''}. Save your "
            "work" + (", or extend the session." if self.site.walltime.allow_extend else ".")
        )

    async def extend(self, by: int) -> dict:
        """Raise the job's time limit by ``by`` seconds, within the site's policy.

        Raises PermissionError (beyond policy; a sentence for the user) or RuntimeError
        (the job is not running, or Slurm refused).
        """
        if not self.site.walltime.allow_extend:
            raise PermissionError("This site does not allow extending sessions.")
        if by <= 0:
            raise PermissionError("by: an extension must be longer than zero.")
        snapshot = await self.monitor.fresh_snapshot(timeout=self.site.slurm.command_timeout)
        job = snapshot.jobs.get(self.job_id) if self.job_id else None
        if job is None or not job.running or job.time_limit_minutes is None:
            raise RuntimeError("The session is not running, so it cannot be extended.")
        limit = job.time_limit_minutes * 60
        most = self.max_walltime(job.partition)
        if limit + by > most:
            room = max(0, most - limit)
            raise PermissionError(
                f"Sessions on partition {job.partition} may run {format_walltime(most)} in "
                f"all; this one has {format_walltime(limit)}, so it can be extended by "
                + (f"{format_walltime(room)} at most." if room else "nothing more.")
            )
        try:
            await self.slurm.extend(self.job_id, -(-(limit + by) // 60))
        except SlurmError as exc:
            raise RuntimeError(f"Slurm refused the extension: {exc}") from None
        self.log.info("Extended %s's session job %s by %s s", self.user.name, self.job_id, by)
        await self.monitor.fresh_snapshot(
            newer_than=snapshot.taken_at, timeout=self.site.slurm.command_timeout
        )
        return self.session_facts()

    async def cancel_dask_workers(self) -> None:
        """Cancel the Dask worker jobs this server's SLURMCluster() submitted (by name)."""
        if not self.site.dask.enabled:
            return
        name = worker_job_name(self.user.name, self.name)
        try:
            await self.slurm.cancel_named(name, self.user.name)
        except SlurmError as exc:
            self.log.warning(
                "Could not cancel %s's Dask workers (%s): %s", self.user.name, name, exc
            )

    async def progress(self):
        """Progress events for the spawn page, from the shared snapshot."""
        last = None
        while True:
            future = getattr(self, "_port_future", None)
            job = self.monitor.snapshot.jobs.get(self.job_id) if self.job_id else None
            if future is not None and future.done():
                message = f"Server starting on {job.batch_host if job else 'its node'}…"
                progress = 80
            elif job is None:
                message, progress = (
                    (f"Submitted as Slurm job {self.job_id}.", 20)
                    if self.job_id
                    else ("Submitting…", 10)
                )
            elif job.state == "PENDING":
                request = self.session_request
                message = pending_message(
                    job.reason,
                    job.partition,
                    request.gpus if request else 0,
                    self.monitor.snapshot.queue_position(job.job_id),
                    job.start_time,
                )
                progress = 30
            elif job.running:
                message, progress = f"Running on {job.batch_host}; starting JupyterLab…", 60
            else:
                message, progress = f"Job {self.job_id} is {job.state}.", 90
            if message != last:
                yield {"progress": progress, "message": message}
                last = message
            if future is not None and future.done():
                return
            await asyncio.sleep(0.5)


__all__ = ["SessionError", "SlurmSpawner", "shared_monitor"]
