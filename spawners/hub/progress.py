"""The spawn page's progress events, read from the hub-wide queue snapshot."""

from __future__ import annotations

import asyncio

from traitlets import HasTraits

from spawners.session.messages import pending_message


class ProgressMixin(HasTraits):
    """``progress()`` for :class:`~spawners.hub.spawner.SlurmSpawner`: news while it waits."""

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
