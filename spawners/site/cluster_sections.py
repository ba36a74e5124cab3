"""The site file's sections about the cluster: Slurm, partitions, images, profiles,
accounts, reservations and group limits."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from spawners.site.types import (
    MemoryMiB,
    SlurmName,
    Strict,
    WalltimeSeconds,
)


class SlurmSettings(Strict):
    """How the hub talks to Slurm."""

    @model_validator(mode="before")
    @classmethod
    def _no_shared_log_dir(cls, data: object) -> object:
        if isinstance(data, dict) and "job_log_dir" in data:
            raise ValueError(
                "job_log_dir is no longer used: each session writes its log into the user's "
                "own ~/.factorylab/servers/<server>/logs, where no other user can plant a "
                "link; delete the key"
            )
        return data

    bin_dir: str = Field("/usr/bin", description="Where sbatch, squeue, scancel, scontrol live.")
    sudo: str = Field("/usr/bin/sudo", description="sudo, used to submit and cancel as the user.")
    operator: SlurmName = Field(
        "slurm",
        description="slurm.conf's SlurmUser. The hub runs one command as this account, never "
        "as root: the helper that raises a session's time limit (only operators may).",
    )
    job_name: SlurmName = Field(
        "factorylab", description="Job name of every session job; the hub watches these."
    )
    signing_key_file: str = Field(
        "/etc/factorylab/session-signing.key",
        description="Key the hub signs session scripts with (root:hub group, 0640). The "
        "time-limit helper extends only jobs whose script carries a valid signature.",
    )
    poll_interval_active: float = Field(
        1.0, gt=0, le=60, description="Seconds between squeue snapshots while a spawn is pending."
    )
    poll_interval_steady: float = Field(
        30.0, gt=0, le=3600, description="Seconds between squeue snapshots when all is steady."
    )
    node_failure_watch: float = Field(
        90.0,
        ge=0,
        le=3600,
        description="Seconds the hub polls at poll_interval_active after a running session's "
        "server stops answering a TCP connection (once per session), so that Slurm's verdict "
        "on a failing node (SlurmdTimeout after the node's last word) reaches the user within "
        "a second, not a steady interval later. 0: never.",
    )
    node_silence_limit: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="Seconds a running session's server may leave the hub's connections "
        "unanswered while Slurm reports its node not responding, before the hub ends the "
        "session as lost with that node (Slurm itself decides later, at its ping cycle). "
        "Set it to slurm.conf's SlurmdTimeout (factorylab doctor checks it is not shorter). "
        "0 (the default): wait for Slurm's verdict.",
    )
    command_timeout: float = Field(
        30.0, gt=0, description="Seconds before a Slurm command is abandoned."
    )
    max_queue_wait: WalltimeSeconds = Field(
        3600,
        description="How long a session may wait in the queue before it is cancelled with a "
        "message. Queue wait does not count against server_start_timeout.",
    )
    server_start_timeout: int = Field(
        300, ge=10, description="Seconds from the job running until its server must listen."
    )
    unknown_state_grace: int = Field(
        300,
        ge=0,
        description="Seconds Slurm may fail to answer before the hub reports sessions in an "
        "unknown state. Sessions are never marked stopped for that alone.",
    )
    orphan_grace: int = Field(
        300,
        ge=0,
        description="Seconds a FactoryLab job the hub does not know may run before it is "
        "cancelled (jobs left by a hub crash during a spawn, say).",
    )
    course_starts_at_once: int = Field(
        10,
        ge=1,
        le=500,
        description="Course sessions the hub has starting at one time when it pre-starts a "
        "course; the other members' sessions wait their turn, so a class never floods "
        "the scheduler.",
    )
    availability_interval: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="The spawn form's free-CPU/GPU figures come from one cached `sinfo --json` "
        "shared by all users, refreshed at most this often (seconds).",
    )


class Partition(Strict):
    """One Slurm partition offered to users."""

    kind: Literal["cpu", "gpu"] = "cpu"
    description: str = ""
    gpu_types: list[SlurmName] = Field(default_factory=list)
    max_gpus: int = Field(0, ge=0, le=64)
    default_gpus: int = Field(0, ge=0, le=64)
    max_cpus: int = Field(8, ge=1, le=4096)
    default_cpus: int = Field(1, ge=1, le=4096)
    cpus_per_gpu: int = Field(0, ge=0, le=512, description="CPUs added per GPU requested.")
    max_memory: MemoryMiB = Field(16 * 1024)
    default_memory: MemoryMiB = Field(2 * 1024)
    mem_per_gpu: MemoryMiB | None = Field(None, description="Memory added per GPU requested.")
    max_walltime: WalltimeSeconds = Field(8 * 3600)
    default_walltime: WalltimeSeconds = Field(2 * 3600)
    gpu_request: Literal["gres", "gpus"] = Field(
        "gres", description="How GPUs are requested: --gres=gpu[:type]:N or --gpus=[type:]N."
    )
    oversubscribe: int = Field(
        1,
        ge=1,
        le=64,
        description="How many jobs may share a CPU core (Slurm's OverSubscribe=FORCE:N); 1: "
        "none. A partition of small Lab sessions that mostly wait for their user can share "
        "cores. make up writes it into the demo cluster's slurm.conf, and then every other "
        "partition as FORCE:1: Slurm keeps sharing jobs off nodes that run jobs of a "
        "partition without OverSubscribe. On a site, match slurm.conf.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> Partition:
        if self.kind == "cpu" and (self.max_gpus or self.default_gpus or self.gpu_types):
            raise ValueError(
                "a cpu partition cannot offer GPUs; set kind: gpu or drop the GPU keys"
            )
        if self.kind == "gpu" and self.max_gpus < 1:
            raise ValueError("max_gpus: a gpu partition needs max_gpus of at least 1")
        for key, default, maximum in (
            ("default_gpus", self.default_gpus, self.max_gpus),
            ("default_cpus", self.default_cpus, self.max_cpus),
            ("default_memory", self.default_memory, self.max_memory),
            ("default_walltime", self.default_walltime, self.max_walltime),
        ):
            if default > maximum:
                raise ValueError(f"{key} is larger than its max_ counterpart; lower it")
        return self


class Image(Strict):
    """A software environment a session can run in."""

    description: str = ""
    venv: str = Field(
        description="Absolute path of the environment (contains bin/jupyterhub-singleuser)."
    )
    gpu: bool = Field(False, description="Whether the image has CUDA-enabled frameworks.")
    apptainer: str | None = Field(
        None,
        description="Absolute path of an Apptainer image (.sif). When set, the session runs "
        "inside it and `venv` is the environment's path inside the container.",
    )
    binds: list[Annotated[str, Field(pattern=r"^/[A-Za-z0-9_./+-]*(:/[A-Za-z0-9_./+-]*)?$")]] = (
        Field(default_factory=list, description="Apptainer bind mounts, SRC[:DEST].")
    )

    @model_validator(mode="after")
    def _absolute(self) -> Image:
        if not self.venv.startswith("/"):
            raise ValueError("venv must be an absolute path such as /opt/factorylab/envs/base")
        if self.apptainer is not None and not re.fullmatch(
            r"/[A-Za-z0-9_./+-]+\.sif", self.apptainer
        ):
            raise ValueError(
                "apptainer must be an absolute path to a .sif file of plain characters"
            )
        return self


class Profile(Strict):
    """A named preset shown as a card on the spawn form ("1 GPU, 2 hours, PyTorch")."""

    display_name: str = Field(min_length=1, max_length=80)
    description: str = Field("", max_length=300)
    partition: SlurmName
    image: SlurmName | None = Field(None, description="Default: defaults.image.")
    gpus: int | None = Field(None, ge=0, le=64)
    gpu_type: SlurmName | None = None
    cpus: int | None = Field(None, ge=1, le=4096)
    memory: str | None = Field(None, description="e.g. 8G; default: the partition's.")
    walltime: str | None = Field(None, description="e.g. 02:00:00; default: the partition's.")
    account: SlurmName | None = None
    reservation: SlurmName | None = None
    groups: list[SlurmName] = Field(
        default_factory=list, description="Only members of these Unix groups see it; [] = all."
    )

    def options(self) -> dict[str, str]:
        """The session options this profile stands for (only the keys it sets)."""
        values = {
            "partition": self.partition,
            "image": self.image,
            "gpus": self.gpus,
            "gpu_type": self.gpu_type,
            "cpus": self.cpus,
            "memory": self.memory,
            "walltime": self.walltime,
            "account": self.account,
            "reservation": self.reservation,
        }
        return {key: str(value) for key, value in values.items() if value is not None}


class _ByUserOrGroup(Strict):
    """Names granted per user and per Unix group (accounts, reservations)."""

    by_user: dict[SlurmName, list[SlurmName]] = Field(default_factory=dict)
    by_group: dict[SlurmName, list[SlurmName]] = Field(default_factory=dict)


class AccountSettings(_ByUserOrGroup):
    """Which Slurm accounts a user may charge a session to."""

    source: Literal["auto", "slurm", "file"] = Field(
        "auto",
        description="slurm: the user's associations from sacctmgr; file: the lists below; "
        "auto: sacctmgr when accounting (slurmdbd) answers, else the lists below.",
    )
    cache_seconds: int = Field(300, ge=0, description="How long one user's list is reused.")


class ReservationSettings(_ByUserOrGroup):
    """Which Slurm reservations a user may start a session in."""

    source: Literal["slurm", "file", "none"] = Field(
        "slurm",
        description="slurm: active reservations from `scontrol show reservation` that name the "
        "user or one of their accounts; file: the lists below; none: no reservation field.",
    )


class GroupLimit(Strict):
    """Tighter limits for members of one Unix group (a course, say)."""

    partitions: list[SlurmName] = Field(
        default_factory=list, description="Partitions the group may use; [] = all."
    )
    max_gpus: int | None = Field(None, ge=0, le=64)
    max_cpus: int | None = Field(None, ge=1, le=4096)
    max_memory: MemoryMiB | None = None
    max_walltime: WalltimeSeconds | None = None


class Defaults(Strict):
    """What a session gets when the user chooses nothing."""

    partition: SlurmName = "cpu"
    image: SlurmName = "base"
