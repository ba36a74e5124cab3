"""The Dask configuration every session gets, so that ``SLURMCluster()`` needs no arguments.

The hub builds it from the site file and the session's validated request, and the
batch script hands it to the session launcher, which fills in the two values only the
running job knows (``NODE_ADDRESS``, ``SESSION_END``) and writes it where Dask reads
configuration (``$DASK_CONFIG``). User code imports nothing from FactoryLab.

What it sets (``jobqueue.slurm`` unless noted):

- ``queue``/``account``/``cores``/``memory``/``processes``: the site's data-prep
  partition and worker size, charged to the session's account;
- ``walltime`` and ``--time-min``/``--deadline``: Slurm itself cuts a worker's limit to
  the session's end, so no worker outlives its session;
- ``scheduler-options``: the scheduler listens on an address workers reach (the site's
  interface, or the node's address); its dashboard listens on loopback only;
- ``python``: workers run the kernel's own environment (dask-jobqueue's default,
  ``sys.executable``), so a kernel of the chip image gets chip workers; in an Apptainer
  image the workers run inside the same image;
- ``name``: ``dask-<user>-<server>``, which is also how the hub cancels them when the
  session ends;
- ``log-directory``;
- ``distributed.dashboard.link``: through the hub, via jupyter-server-proxy;
- ``labextension.factory``: the Lab sidebar's "New" makes the same SLURMCluster.
"""

from __future__ import annotations

import shlex

from .containers import container_prefix
from .session_request import SessionRequest
from .site import Site
from .units import format_walltime

NODE_ADDRESS = "@NODE_ADDRESS@"
SESSION_END = "@SESSION_END@"
DASHBOARD_LINK = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"
#: Workers end this long before the session, so none sees its end. The job gets it as
#: FACTORYLAB_DASK_DEADLINE_MARGIN (the launcher and the session extension read it).
DEADLINE_MARGIN = 60


def worker_job_name(user: str, server_name: str) -> str:
    """The Slurm job name of a session's Dask workers (unique per user and server)."""
    return f"dask-{user}-{server_name or 'default'}"


def session_dask_config(
    site: Site, request: SessionRequest, user: str, server_name: str, home: str
) -> dict:
    """The Dask configuration for one session (a plain dict, JSON-serialisable)."""
    settings = site.dask
    partition_name = settings.partition or site.defaults.partition
    partition = site.partitions[partition_name]
    image = site.images[request.image]
    gpus = partition.default_gpus if partition.kind == "gpu" else 0
    walltime = min(settings.walltime or partition.max_walltime, request.walltime_seconds)
    min_walltime = min(settings.min_walltime, walltime)
    scheduler_options: dict[str, str] = {"dashboard_address": "127.0.0.1:0"}
    if not settings.interface:
        scheduler_options["host"] = NODE_ADDRESS
    directives = [
        f"--time-min={format_walltime(min_walltime)}",
        f"--deadline={SESSION_END}",
        f"--comment=factorylab-dask:{user}:{server_name or 'default'}",
    ]
    if partition.kind == "gpu" and gpus:
        directives.append(
            f"--gres=gpu:{gpus}" if partition.gpu_request == "gres" else f"--gpus={gpus}"
        )
    slurm = {
        "name": worker_job_name(user, server_name),
        "queue": partition_name,
        "account": request.account,
        "cores": settings.cores,
        "memory": f"{settings.memory}MiB",
        "processes": settings.processes,
        "walltime": format_walltime(walltime),
        "interface": settings.interface,
        "log-directory": settings.log_directory.replace("~", home.rstrip("/"), 1),
        "job-extra-directives": directives,
        "scheduler-options": scheduler_options,
    }
    if image.apptainer:
        container = container_prefix(image.apptainer, image.binds, gpus)
        slurm["python"] = shlex.join([*container, f"{image.venv.rstrip('/')}/bin/python"])
    return {
        "jobqueue": {"slurm": slurm},
        "distributed": {"dashboard": {"link": DASHBOARD_LINK}},
        "labextension": {
            "factory": {
                "module": "dask_jobqueue",
                "class": "SLURMCluster",
                "args": [],
                "kwargs": {},
            }
        },
    }
