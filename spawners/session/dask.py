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
- ``labextension.factory``: the Lab sidebar's "New" makes the same SLURMCluster;
- TLS (``distributed.comm``): mutual TLS with a certificate authority made for each job.

Dask over TLS: the launcher makes a CA, signs one certificate (server and client use)
with it, discards the CA's key, and writes ``ca.crt``, ``session.crt``, ``session.key``
(0600, in a 0700 directory) to ``<session dir>/dask-tls``; homes are shared, so workers
on other nodes read the same files. The configuration names those files:

- ``distributed.comm.tls.*`` for all three roles, and ``require-encryption``: every
  ``Security()`` built from configuration (the scheduler's, a plain ``Client``'s, the
  cluster's, so ``Client(cluster)``'s, a ``LocalCluster``'s) presents the session's
  certificate and accepts only peers whose certificate the session's CA signed, and
  nothing listens or connects over plain ``tcp://``;
- ``scheduler-options.protocol: tls://``: dask-jobqueue gives the scheduler a protocol
  only from its ``security``/``protocol`` arguments, which ``SLURMCluster()`` lacks;
- ``worker-extra-args``: the worker command line names the files too (dask-jobqueue
  adds ``--tls-*`` only for a ``security`` argument); a worker without them (the user
  passed ``worker_extra_args``) reads them from the configuration, as worker jobs
  inherit ``DASK_CONFIG`` from the kernel that submits them.
"""

from __future__ import annotations

import shlex

from spawners.session.containers import container_prefix
from spawners.session.paths import session_dir
from spawners.session.request import SessionRequest
from spawners.site.model import Site
from spawners.site.units import format_walltime

NODE_ADDRESS = "@NODE_ADDRESS@"
SESSION_END = "@SESSION_END@"
DASHBOARD_LINK = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"
#: Workers end this long before the session, so none sees its end. The job gets it as
#: FACTORYLAB_DASK_DEADLINE_MARGIN (the launcher and the session extension read it).
DEADLINE_MARGIN = 60
#: The session's Dask certificates, in its session directory (see :mod:`.paths`).
TLS_DIRECTORY = "dask-tls"
TLS_CA_FILE = "ca.crt"
TLS_CERT_FILE = "session.crt"
TLS_KEY_FILE = "session.key"
TLS_PROTOCOL = "tls://"


def worker_job_name(user: str, server_name: str) -> str:
    """The Slurm job name of a session's Dask workers (unique per user and server)."""
    return f"dask-{user}-{server_name or 'default'}"


def dask_tls_files(session_directory: str) -> dict[str, str]:
    """The paths of a session's Dask CA, certificate and key (keys ``ca``, ``cert``, ``key``)."""
    directory = f"{session_directory.rstrip('/')}/{TLS_DIRECTORY}"
    return {
        "ca": f"{directory}/{TLS_CA_FILE}",
        "cert": f"{directory}/{TLS_CERT_FILE}",
        "key": f"{directory}/{TLS_KEY_FILE}",
    }


def dask_tls_config(session_directory: str) -> dict:
    """``distributed.comm``: mutual TLS with the session's files, encryption required."""
    files = dask_tls_files(session_directory)
    pair = {"cert": files["cert"], "key": files["key"]}
    return {
        "require-encryption": True,
        "tls": {
            "ca-file": files["ca"],
            "scheduler": dict(pair),
            "worker": dict(pair),
            "client": dict(pair),
        },
    }


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
    directory = session_dir(home, server_name)
    tls_files = dask_tls_files(directory)
    scheduler_options: dict[str, str] = {
        "dashboard_address": "127.0.0.1:0",
        "protocol": TLS_PROTOCOL,
    }
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
        "worker-extra-args": [
            *("--protocol", TLS_PROTOCOL.removesuffix("://")),
            *("--tls-ca-file", tls_files["ca"]),
            *("--tls-cert", tls_files["cert"]),
            *("--tls-key", tls_files["key"]),
            "--no-dashboard",  # a worker's dashboard would listen on its node, unauthenticated
        ],
    }
    if image.apptainer:
        container = container_prefix(image.apptainer, image.binds, gpus)
        slurm["python"] = shlex.join([*container, f"{image.venv.rstrip('/')}/bin/python"])
    return {
        "jobqueue": {"slurm": slurm},
        "distributed": {
            "dashboard": {"link": DASHBOARD_LINK},
            "comm": dask_tls_config(directory),
        },
        "labextension": {
            "factory": {
                "module": "dask_jobqueue",
                "class": "SLURMCluster",
                "args": [],
                "kwargs": {},
            }
        },
    }
