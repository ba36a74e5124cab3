"""Render a kernel's batch script with Jinja2, from checked values only.

The job runs the kernel agent (``templates/kernel_agent.py``) in the kernel's image: it
starts the kernel when the session's provisioner asks, starts it again on a restart
(the same job, so the GPUs are kept), and signals or stops it. The agent and the kernel
listen with CurveZMQ, under keys that only the session's user can read.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from spawners.session.containers import container_prefix
from spawners.session.job import SAFE_PATH
from spawners.session.kernels import KERNEL_ID
from spawners.session.render import templates
from spawners.session.request import InvalidRequest, SessionRequest
from spawners.site.types import SLURM_NAME, is_valid_username

#: The kernel job's parts, in the order its script joins them (templates/).
AGENT_PARTS = ("node_address.py", "kernel_agent.py")
#: A kernel job ends this long before its session, so it never outlives it.
DEADLINE_MARGIN = 60
#: No kernel job is started with less than this left in its session.
MIN_SECONDS = 120

_MAX_DIRECTORY = 4096


def kernel_dir(home: str, kernel_id: str) -> str:
    """A kernel's private directory in its user's home (0700): its keys and job log."""
    if not KERNEL_ID.match(kernel_id):
        raise InvalidRequest("kernel_id", "must be the kernel's id (a uuid4 in lower case)")
    return f"{home.rstrip('/')}/.factorylab/kernels/{kernel_id}"


def check_directory(directory: object, home: str) -> str:
    """The notebook's directory, where the kernel starts: absolute, printable, no ``..``."""
    if not isinstance(directory, str) or not directory:
        return home
    if (
        not directory.startswith("/")
        or len(directory) > _MAX_DIRECTORY
        or not directory.isprintable()
        or "/../" in directory + "/"
    ):
        raise InvalidRequest(
            "directory", "must be an absolute path of printable characters, without '..'"
        )
    return directory


@dataclass(frozen=True)
class KernelJob:
    """Everything a kernel's batch script needs. Built by the hub from checked values."""

    user: str
    server_name: str
    kernel: str
    request: SessionRequest
    job_name: str
    home: str
    kernel_dir: str
    directory: str
    venv: str
    session_ends_at: float
    apptainer: str | None = None
    binds: tuple[str, ...] = ()

    def time_limit_seconds(self, now: float | None = None) -> int:
        """The kernel's walltime, cut to end ``DEADLINE_MARGIN`` before the session."""
        left = int(self.session_ends_at - (time.time() if now is None else now)) - DEADLINE_MARGIN
        if left < MIN_SECONDS:
            raise InvalidRequest(
                "walltime",
                "your session ends in less than a few minutes; extend it or start a new one "
                "before opening a kernel job",
            )
        return min(self.request.walltime_seconds, left)

    def check(self) -> None:
        """Refuse anything that could break out of an ``#SBATCH`` line or a quote."""
        if not is_valid_username(self.user):
            raise ValueError(f"user name {self.user[:40]!r} is not a plain Unix user name")
        if not re.fullmatch(SLURM_NAME, self.job_name) or not re.fullmatch(SLURM_NAME, self.kernel):
            raise ValueError(f"job name {self.job_name!r} is not a plain name")
        for label, path in (
            ("home", self.home),
            ("kernel directory", self.kernel_dir),
            ("image", self.venv),
            *(("Apptainer image", p) for p in ([self.apptainer] if self.apptainer else [])),
            *(("bind", b.split(":")[0]) for b in self.binds),
        ):
            if not SAFE_PATH.match(path):
                raise ValueError(f"{label} {path!r} must be an absolute path of plain characters")
        check_directory(self.directory, self.home)


def format_minutes(seconds: int) -> str:
    """Slurm's ``--time`` in whole minutes, at least 1 (``D-HH:MM:SS`` is not needed)."""
    return str(max(1, seconds // 60))


def render_kernel_script(job: KernelJob, now: float | None = None) -> str:
    """Return the batch script of one kernel job.

    >>> from spawners.session.request import SessionRequest
    >>> req = SessionRequest("gpu", "pytorch", 1, "h100", 2, 8192, 3600)
    >>> job = KernelJob("demo01", "", "torch", req, "factorylab-kernel-demo01-default",
    ...     "/home/demo01", "/home/demo01/.factorylab/kernels/k", "/home/demo01/My work",
    ...     "/opt/factorylab/envs/pytorch", session_ends_at=7200.0)
    >>> script = render_kernel_script(job, now=0.0)
    >>> "#SBATCH --gres=gpu:h100:1" in script, "#SBATCH --time=60" in script
    (True, True)
    >>> "export FACTORYLAB_KERNEL_CWD='/home/demo01/My work'" in script
    True
    """
    job.check()
    limit = job.time_limit_seconds(now)
    deadline = time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.localtime(job.session_ends_at - DEADLINE_MARGIN)
    )
    venv_bin = f"{job.venv.rstrip('/')}/bin"
    return templates.get_template("kernel.sh.j2").render(
        job=job,
        request=job.request,
        time_minutes=format_minutes(limit),
        deadline=deadline,
        env_bin=venv_bin,
        python=f"{venv_bin}/python",
        container=container_prefix(job.apptainer, job.binds, job.request.gpus),
        agent_parts=AGENT_PARTS,
    )
