"""Hub endpoints for a session's kernel jobs (the ``factorylab-slurm`` provisioner's calls).

``POST /hub/api/factorylab/kernels`` checks a kernel's request as a session request is
checked (site file, the user's entitlements) and renders its batch script; the session
submits it as its user. ``GET /hub/api/factorylab/kernels/<job id>`` tells the session
how its kernel job is doing, in plain words, from the hub's one shared queue snapshot.
Both answer a session's own server token only, and only about its own kernel jobs.
"""

from __future__ import annotations

import contextlib
import json
import pwd
import time
from dataclasses import replace
from typing import ClassVar

from jupyterhub.apihandlers import APIHandler
from tornado import web

from spawners.hub.session_api import json_body, running_session
from spawners.session.kernel_job import KernelJob, check_directory, kernel_dir, render_kernel_script
from spawners.session.kernels import kernel_job_name, kernel_request
from spawners.session.messages import kernel_ended_sentence, pending_message
from spawners.session.request import InvalidRequest
from spawners.site.kernel_sections import Kernel
from spawners.slurm.jobs import SlurmJob


class KernelJobsHandler(APIHandler):
    """``POST /hub/api/factorylab/kernels``: ``{kernel, options, kernel_id, directory}``."""

    @web.authenticated
    async def post(self) -> None:
        _, session = running_session(self)
        data = json_body(self, {"kernel", "options", "kernel_id", "directory"})
        timeout = session.site.slurm.command_timeout
        snapshot = await session.monitor.current_snapshot(timeout=timeout)
        job = snapshot.jobs.get(session.job_id or "")
        if job is None or not job.running or not job.end_time:
            raise web.HTTPError(409, "this session is not running, so it cannot open a kernel job")
        try:
            kernel, spec = await self._kernel_job(session, data, job)
            script = render_kernel_script(spec)
        except InvalidRequest as exc:
            raise web.HTTPError(400, f"Your kernel job was not submitted. {exc}") from None
        except (KeyError, ValueError) as exc:
            raise web.HTTPError(400, f"Your kernel job was not submitted: {exc}") from None
        self.log.info(
            "Kernel job for %s/%s: %s (%s)",
            spec.user,
            session.name,
            kernel.display_name,
            spec.request,
        )
        answer = {
            "script": script,
            "kernel_dir": spec.kernel_dir,
            "job_name": spec.job_name,
            "max_queue_wait": session.site.slurm.max_queue_wait,
            "idle_limit": kernel.idle_limit,
        }
        self.finish(json.dumps(answer))

    async def _kernel_job(self, session, data: dict, job: SlurmJob) -> tuple[Kernel, KernelJob]:
        """The checked request, as a kernel job of this session (charged as the session)."""
        site, user = session.site, session.user.name
        home = pwd.getpwnam(user).pw_dir
        kernel, request = kernel_request(
            site, data.get("kernel"), data.get("options", {}), await session.entitlements()
        )
        # charged as its session's job is, by Slurm's own account of it (a hub restart
        # loses nothing); not in its reservation (a reservation's nodes may have no GPU:
        # the kernel's partition is not the session's)
        own = session.session_request
        account = job.account or (own.account if own is not None else None)
        if account:
            request = replace(request, account=account)
        image = site.images[request.image]
        return kernel, KernelJob(
            user=user,
            server_name=session.name,
            kernel=str(data["kernel"]),
            request=request,
            job_name=kernel_job_name(site.slurm.job_name, session.job_id),
            home=home,
            kernel_dir=kernel_dir(home, str(data.get("kernel_id", ""))),
            directory=check_directory(data.get("directory"), home),
            venv=image.venv,
            session_ends_at=float(job.end_time),
            apptainer=image.apptainer,
            binds=tuple(image.binds),
        )


class KernelJobHandler(APIHandler):
    """``GET /hub/api/factorylab/kernels/<job id>``: state, plain-words news, agent."""

    #: A job the snapshot does not list yet (just submitted) may ask for a fresh one,
    #: at most this often per session; until one lists it or not, the answer is UNKNOWN.
    FRESH_EVERY = 1.0
    _fresh_at: ClassVar[dict[str, float]] = {}

    @web.authenticated
    async def get(self, job_id: str) -> None:
        _, session = running_session(self)
        name = kernel_job_name(session.site.slurm.job_name, session.job_id)
        monitor, timeout = session.monitor, session.site.slurm.command_timeout
        asked = time.monotonic()
        snapshot = await monitor.current_snapshot(timeout=timeout)
        if job_id not in snapshot.kernels and self._may_refresh(session.job_id):
            with contextlib.suppress(TimeoutError):
                snapshot = await monitor.fresh_snapshot(timeout=timeout)
        job = snapshot.kernels.get(job_id)
        if job is not None and (job.user != session.user.name or job.name != name):
            job = None  # another session's kernel: as if it did not exist
        if job is None and snapshot.taken_at < asked:
            # not listed, but this view is older than the question: no verdict yet
            self.finish(json.dumps({"job_id": job_id, "ended": False, "state": "UNKNOWN"}))
            return
        news: dict = {"job_id": job_id, "ended": job is None or not job.active}
        if job is None or not job.active:
            news.update(
                state=job.state if job else None, message=kernel_ended_sentence(job_id, job)
            )
        else:
            if not job.running or not job.comment:
                monitor.keep_fresh(job_id, 10)  # its provisioner asks again in 2 s
            news.update(
                state=job.state,
                node=job.batch_host or job.nodes,
                comment=job.comment,
                end_time=job.end_time or None,
            )
            if job.state == "PENDING":
                partition = session.site.partitions.get(job.partition)
                gpus = 1 if partition is not None and partition.kind == "gpu" else 0
                position = snapshot.queue_position(job_id)
                news["message"] = pending_message(
                    job.reason, job.partition, gpus, position, job.start_time
                )
                news.update(reason=job.reason, position=position)
        self.finish(json.dumps(news))

    def _may_refresh(self, session_job: str | None) -> bool:
        now = time.monotonic()
        key = session_job or ""
        if now - self._fresh_at.get(key, float("-inf")) < self.FRESH_EVERY:
            return False
        if len(self._fresh_at) > 10_000:  # one key per session job: forget old ones
            self._fresh_at.clear()
        self._fresh_at[key] = now
        return True


def handlers() -> list[tuple[str, type]]:
    """Routes to add with ``c.JupyterHub.extra_handlers``."""
    return [
        (r"/api/factorylab/kernels", KernelJobsHandler),
        (r"/api/factorylab/kernels/(\d+)", KernelJobHandler),
    ]
