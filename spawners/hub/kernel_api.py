"""Hub endpoints for a session's kernel jobs (the ``factorylab-slurm`` provisioner's calls).

``POST /hub/api/factorylab/kernels`` checks a kernel's request as a session request is
checked (site file, the user's entitlements) and renders its batch script; the session
submits it as its user. ``GET /hub/api/factorylab/kernels/<job id>`` tells the session
how its kernel job is doing, in plain words, from the hub's one shared queue snapshot.
Both answer a session's own server token only, and only about its own kernel jobs.
"""

from __future__ import annotations

import json
import pwd

from jupyterhub.apihandlers import APIHandler
from tornado import web

from spawners.hub.session_api import json_body, running_session
from spawners.session.kernel_job import KernelJob, check_directory, kernel_dir, render_kernel_script
from spawners.session.kernels import kernel_job_name, kernel_request
from spawners.session.messages import pending_message
from spawners.session.request import InvalidRequest
from spawners.slurm.jobs import SlurmJob


def kernel_ended_sentence(job_id: str, job: SlurmJob | None) -> str:
    """Why a kernel job is gone, for the notebook.

    >>> kernel_ended_sentence("12", None)
    'Your kernel job 12 ended; Slurm no longer lists it.'
    """
    if job is None:
        return f"Your kernel job {job_id} ended; Slurm no longer lists it."
    details = [f"state {job.state}"]
    if job.exit_code:
        details.append(f"exit code {job.exit_code}")
    if job.reason and job.reason != "None":
        details.append(f"reason {job.reason}")
    return f"Your kernel job {job_id} ended ({', '.join(details)})."


class KernelJobsHandler(APIHandler):
    """``POST /hub/api/factorylab/kernels``: ``{kernel, options, kernel_id, directory}``."""

    @web.authenticated
    async def post(self) -> None:
        _, session = running_session(self)
        data = json_body(self, {"kernel", "options", "kernel_id", "directory"})
        snapshot = await session.monitor.current_snapshot(
            timeout=session.site.slurm.command_timeout
        )
        job = snapshot.jobs.get(session.job_id or "")
        if job is None or not job.running or not job.end_time:
            raise web.HTTPError(409, "this session is not running, so it cannot open a kernel job")
        site, user = session.site, session.user.name
        home = pwd.getpwnam(user).pw_dir
        try:
            kernel, request = kernel_request(
                site, data.get("kernel"), data.get("options", {}), await session.entitlements()
            )
            image = site.images[request.image]
            spec = KernelJob(
                user=user,
                server_name=session.name,
                kernel=str(data["kernel"]),
                request=request,
                job_name=kernel_job_name(site.slurm.job_name, user, session.name),
                home=home,
                kernel_dir=kernel_dir(home, str(data.get("kernel_id", ""))),
                directory=check_directory(data.get("directory"), home),
                venv=image.venv,
                session_ends_at=float(job.end_time),
                apptainer=image.apptainer,
                binds=tuple(image.binds),
            )
            script = render_kernel_script(spec)
        except InvalidRequest as exc:
            raise web.HTTPError(400, f"Your kernel job was not submitted. {exc}") from None
        self.log.info(
            "Kernel job for %s/%s: %s (%s)", user, session.name, kernel.display_name, request
        )
        self.finish(
            json.dumps(
                {
                    "script": script,
                    "kernel_dir": spec.kernel_dir,
                    "job_name": spec.job_name,
                    "max_queue_wait": site.slurm.max_queue_wait,
                    "idle_limit": kernel.idle_limit,
                }
            )
        )


class KernelJobHandler(APIHandler):
    """``GET /hub/api/factorylab/kernels/<job id>``: state, plain-words news, agent."""

    @web.authenticated
    async def get(self, job_id: str) -> None:
        _, session = running_session(self)
        name = kernel_job_name(session.site.slurm.job_name, session.user.name, session.name)
        monitor = session.monitor
        monitor.mark_starting(job_id)  # fast polls while the provisioner waits
        try:
            snapshot = await monitor.fresh_snapshot(timeout=session.site.slurm.command_timeout)
        except TimeoutError:
            snapshot = monitor.snapshot
        job = snapshot.kernels.get(job_id)
        if job is not None and (job.user != session.user.name or job.name != name):
            job = None  # another session's kernel: as if it did not exist
        news: dict = {"job_id": job_id, "ended": job is None or not job.active}
        if job is None or not job.active:
            monitor.mark_settled(job_id)
            news.update(
                state=job.state if job else None, message=kernel_ended_sentence(job_id, job)
            )
        else:
            if job.running:
                monitor.mark_settled(job_id)
            news.update(state=job.state, node=job.batch_host or job.nodes, comment=job.comment)
            if job.state == "PENDING":
                partition = session.site.partitions.get(job.partition)
                gpus = 1 if partition is not None and partition.kind == "gpu" else 0
                news["message"] = pending_message(
                    job.reason, job.partition, gpus, snapshot.queue_position(job_id), job.start_time
                )
                news.update(reason=job.reason, position=snapshot.queue_position(job_id))
        self.finish(json.dumps(news))


def handlers() -> list[tuple[str, type]]:
    """Routes to add with ``c.JupyterHub.extra_handlers``."""
    return [
        (r"/api/factorylab/kernels", KernelJobsHandler),
        (r"/api/factorylab/kernels/(\d+)", KernelJobHandler),
    ]
