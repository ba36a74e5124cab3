"""The site file's ``kernels:`` section: notebook kernels that run as Slurm jobs of their own.

Each entry becomes a kernelspec in every session of the users who may use it (the
Launcher shows it, e.g. "PyTorch · 1 H100 (Slurm job)"). Its values are a session
request's (partition, GPUs, CPUs, memory, walltime, image), checked as one.
"""

from __future__ import annotations

from pydantic import Field

from spawners.site.cluster_sections import Profile
from spawners.site.types import WalltimeSeconds


class Kernel(Profile):
    """A kernel that runs as its own Slurm job, held only while the kernel lives."""

    display_name: str = Field(
        min_length=1, max_length=80, description='The Launcher\'s label, e.g. "PyTorch · 1 H100".'
    )
    idle_limit: WalltimeSeconds | None = Field(
        "00:30:00",
        description="The session's kernel culler shuts the kernel down (and so ends its job) "
        "after this long without executing anything; null: never.",
    )
