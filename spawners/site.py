"""The site file: one YAML document that describes what a FactoryLab site offers.

It is validated with pydantic when the hub starts and by ``factorylab check-site``.
Every error names the file, the key and the fix; an invalid file stops the hub
instead of failing later at spawn time. ``hub_config/site.example.yaml`` documents
every key with its default.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from .site_auth import UNIX_USERNAME, AuthSettings
from .units import format_memory, format_walltime, parse_memory_mib, parse_walltime_seconds

# Names that end up in #SBATCH lines or paths: conservative on purpose.
SLURM_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

MemoryMiB = Annotated[int, BeforeValidator(parse_memory_mib)]
WalltimeSeconds = Annotated[int, BeforeValidator(parse_walltime_seconds)]
SlurmName = Annotated[str, Field(pattern=SLURM_NAME)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSettings(_Strict):
    """Where the hub listens and how jobs reach it."""

    public_url: str = Field(
        "http://127.0.0.1:8000", description="URL users open; the proxy listens here."
    )
    hub_ip: str = Field("127.0.0.1", description="Address the hub's own API binds to.")
    hub_port: int = Field(8081, ge=1, le=65535)
    hub_connect_ip: str = Field(
        "127.0.0.1",
        description="Address that jobs on compute nodes use to reach the hub API.",
    )
    proxy_api_port: int = Field(8001, ge=1, le=65535)
    state_dir: str = Field("/var/lib/factorylab", description="Hub database and cookie secret.")
    named_servers: int = Field(
        2, ge=0, le=50, description="Named servers each user may run besides the default; 0: none."
    )
    tls_cert_file: str | None = Field(
        None, description="Certificate the proxy serves on an https public_url (PEM)."
    )
    tls_key_file: str | None = Field(None, description="Its private key (PEM).")
    internal_ssl: bool = Field(
        False,
        description="Mutual TLS between hub, proxy, services and sessions (JupyterHub's "
        "internal_ssl). The hub then starts the proxy itself, with the internal certificates.",
    )
    internal_ssl_alt_names: list[str] = Field(
        default_factory=list,
        description="Names in each session's certificate besides localhost and 127.0.0.1, "
        "e.g. DNS:*.compute.example.org: how the hub and proxy reach compute nodes.",
    )
    proxy_command: list[str] = Field(
        default_factory=lambda: [
            "/usr/bin/node",
            "/opt/factorylab/proxy/node_modules/configurable-http-proxy/bin/"
            "configurable-http-proxy",
        ],
        description="How the hub starts configurable-http-proxy when it starts it itself.",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> HubSettings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError(
                "hub.tls_cert_file and hub.tls_key_file: set both (a certificate and its key) "
                "or neither"
            )
        if self.tls_cert_file and not self.public_url.startswith("https://"):
            raise ValueError(
                "hub.public_url: a TLS certificate is set, so the URL must start with https://"
            )
        for name in self.internal_ssl_alt_names:
            if not re.fullmatch(r"(DNS|IP):[A-Za-z0-9*.:-]+", name):
                raise ValueError(
                    f"hub.internal_ssl_alt_names: {name!r} is not DNS:<name> or IP:<address>"
                )
        return self

    @property
    def internal_certs_dir(self) -> str:
        """Where the hub keeps its internal-SSL CA and certificates (hub user only)."""
        return f"{self.state_dir}/internal-ssl"


class UserSettings(_Strict):
    """Who may use the hub."""

    group: SlurmName = Field(
        "factorylab-users",
        description="Unix group whose members may log in; the hub may run Slurm verbs as them.",
    )


DEMO_PUBLIC_CONSENT = "anyone who can reach this hub may log in as a demo user"


class DemoSettings(_Strict):
    """Demo accounts for a local evaluation cluster. Never enable on a real site."""

    enabled: bool = False
    prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,15}$")] = "demo"
    count: int = Field(40, ge=0, le=500)
    password: str = Field("", description="Demo-only password shared by all demo users.")
    groups: dict[SlurmName, list[SlurmName]] = Field(
        default_factory=dict,
        description="Extra Unix groups for demo users (to try group_limits and profiles).",
    )
    public: str = Field(
        "",
        description="Demo users on a public_url that is not loopback are refused unless this "
        f"says, word for word: {DEMO_PUBLIC_CONSENT!r}.",
    )

    @model_validator(mode="after")
    def _password_when_enabled(self) -> DemoSettings:
        if self.enabled and len(self.password) < 8:
            raise ValueError("password: demo users need a password of at least 8 characters")
        return self

    def usernames(self) -> list[str]:
        """The demo accounts, ``demo01`` … ``demo40``."""
        width = max(2, len(str(self.count)))
        return [f"{self.prefix}{i:0{width}d}" for i in range(1, self.count + 1)]


class SlurmSettings(_Strict):
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
    availability_interval: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="The spawn form's free-CPU/GPU figures come from one cached `sinfo --json` "
        "shared by all users, refreshed at most this often (seconds).",
    )


class Partition(_Strict):
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


class Image(_Strict):
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


class Profile(_Strict):
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


class _ByUserOrGroup(_Strict):
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


class GroupLimit(_Strict):
    """Tighter limits for members of one Unix group (a course, say)."""

    partitions: list[SlurmName] = Field(
        default_factory=list, description="Partitions the group may use; [] = all."
    )
    max_gpus: int | None = Field(None, ge=0, le=64)
    max_cpus: int | None = Field(None, ge=1, le=4096)
    max_memory: MemoryMiB | None = None
    max_walltime: WalltimeSeconds | None = None


class Defaults(_Strict):
    """What a session gets when the user chooses nothing."""

    partition: SlurmName = "cpu"
    image: SlurmName = "base"


class DaskSettings(_Strict):
    """Dask worker jobs that ``SLURMCluster()`` submits from a session, with no arguments."""

    enabled: bool = Field(
        True, description="Give every session a Dask configuration for SLURMCluster()."
    )
    partition: SlurmName | None = Field(
        None, description="The data-prep partition workers go to; default: defaults.partition."
    )
    cores: int = Field(1, ge=1, le=4096, description="CPUs per worker job.")
    memory: MemoryMiB = Field(2 * 1024, description="Memory per worker job, e.g. 2G.")
    processes: int = Field(1, ge=1, le=256, description="Dask worker processes per job.")
    walltime: WalltimeSeconds | None = Field(
        None,
        description="Longest worker job; default: the partition's max_walltime. A worker "
        "never outlives its session: Slurm cuts its limit to the session's end.",
    )
    min_walltime: WalltimeSeconds = Field(
        300, description="A worker is not started with less than this left in its session."
    )
    interface: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,32}$",
        description="Network interface workers reach the scheduler on (ib0, eth0); "
        "default: the address the compute node's host name resolves to.",
    )
    log_directory: str = Field(
        "~/.factorylab/dask-logs",
        pattern=r"^~?/[A-Za-z0-9_./+-]*$",
        description="Where worker jobs write their logs; ~ is the user's home.",
    )


class IdleSettings(_Strict):
    """Idle sessions give their resources back. Idle means: no kernel executed anything.

    A kernel that is executing is never idle; an open browser tab does not count as
    activity. The first matching rule applies: ``by_profile``, then ``by_partition``,
    then ``default``. ``null`` there means never.
    """

    enabled: bool = True
    default: WalltimeSeconds | None = Field(4 * 3600, description="Idle limit, e.g. 04:00:00.")
    by_partition: dict[SlurmName, WalltimeSeconds | None] = Field(
        default_factory=dict, description="e.g. {gpu: '00:30:00'}"
    )
    by_profile: dict[SlurmName, WalltimeSeconds | None] = Field(default_factory=dict)
    check_every: int = Field(
        60, ge=5, le=3600, description="Seconds between the idle culler's checks."
    )
    report_every: int = Field(
        60, ge=5, le=3600, description="Seconds between a session's kernel-activity reports."
    )


class WalltimeSettings(_Strict):
    """What users see of their session's time limit, and how far they may extend it."""

    warnings: list[WalltimeSeconds] = Field(
        default_factory=lambda: [15 * 60, 5 * 60],
        description="Warn this long before the end, e.g. ['00:15:00', '00:05:00'].",
    )
    extend_by: WalltimeSeconds = Field(
        3600,
        description="What one 'extend' adds. The total never passes the user's "
        "max_walltime for the partition (group_limits included).",
    )
    allow_extend: bool = True


class NotebookSettings(_Strict):
    """Starter notebooks copied into each user's home at their first session."""

    enabled: bool = True
    source: str = Field(
        "/opt/factorylab/notebooks",
        pattern=r"^/[A-Za-z0-9_./+-]*$",
        description="Where the starter notebooks are on the compute nodes (read-only).",
    )
    directory: str = Field(
        "factorylab-notebooks",
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$",
        description="The folder in each user's home they are copied to. A file is copied "
        "only if the user never had it: edits and deletions are kept.",
    )


class Site(_Strict):
    """The whole site file."""

    hub: HubSettings = HubSettings()
    auth: AuthSettings = AuthSettings()
    users: UserSettings = UserSettings()
    demo: DemoSettings = DemoSettings()
    slurm: SlurmSettings = SlurmSettings()
    defaults: Defaults = Defaults()
    partitions: dict[SlurmName, Partition] = Field(min_length=1)
    images: dict[SlurmName, Image] = Field(min_length=1)
    profiles: dict[SlurmName, Profile] = Field(default_factory=dict)
    accounts: AccountSettings = AccountSettings()
    reservations: ReservationSettings = ReservationSettings()
    group_limits: dict[SlurmName, GroupLimit] = Field(default_factory=dict)
    dask: DaskSettings = DaskSettings()
    notebooks: NotebookSettings = NotebookSettings()
    idle: IdleSettings = IdleSettings()
    walltime: WalltimeSettings = WalltimeSettings()

    @property
    def dask_partition(self) -> Partition:
        """The partition Dask workers go to."""
        return self.partitions[self.dask.partition or self.defaults.partition]

    @model_validator(mode="after")
    def _demo_stays_local(self) -> Site:
        host = urlsplit(self.hub.public_url).hostname or ""
        loopback = host == "localhost" or host.startswith("127.") or host == "::1"
        if self.demo.enabled and not loopback and self.demo.public != DEMO_PUBLIC_CONSENT:
            raise ValueError(
                f"demo.enabled: demo users share one published password, and public_url "
                f"{self.hub.public_url} is reachable from beyond this machine; set "
                f"demo.enabled: false, or say demo.public: {DEMO_PUBLIC_CONSENT!r}"
            )
        return self

    @model_validator(mode="after")
    def _defaults_exist(self) -> Site:
        if self.defaults.partition not in self.partitions:
            raise ValueError(
                f"defaults.partition: {self.defaults.partition!r} is not one of the partitions "
                f"({', '.join(self.partitions)}); name one of them"
            )
        if self.defaults.image not in self.images:
            raise ValueError(
                f"defaults.image: {self.defaults.image!r} is not one of the images "
                f"({', '.join(self.images)}); name one of them"
            )
        return self

    @model_validator(mode="after")
    def _references_exist(self) -> Site:
        for group, limit in self.group_limits.items():
            for name in limit.partitions:
                if name not in self.partitions:
                    raise ValueError(
                        f"group_limits.{group}.partitions: {name!r} is not one of the "
                        f"partitions ({', '.join(self.partitions)}); name one of them"
                    )
        self._check_dask()
        self._check_idle()
        from .session_request import InvalidRequest, check_profile  # circular at import time

        for key, profile in self.profiles.items():
            try:
                check_profile(profile, self)
            except InvalidRequest as exc:
                raise ValueError(
                    f"profiles.{key}.{exc}; change the profile or the partition"
                ) from None
        return self

    def _check_idle(self) -> None:
        for section, keys, known in (
            ("by_partition", self.idle.by_partition, self.partitions),
            ("by_profile", self.idle.by_profile, self.profiles),
        ):
            for key in keys:
                if key not in known:
                    raise ValueError(
                        f"idle.{section}: {key!r} is not one of the {section[3:]}s "
                        f"({', '.join(known)}); name one of them"
                    )

    def _check_dask(self) -> None:
        name = self.dask.partition
        if name is not None and name not in self.partitions:
            raise ValueError(
                f"dask.partition: {name!r} is not one of the partitions "
                f"({', '.join(self.partitions)}); name one of them"
            )
        partition = self.dask_partition
        limits = (
            ("cores", self.dask.cores, partition.max_cpus, str),
            ("memory", self.dask.memory, partition.max_memory, format_memory),
            ("walltime", self.dask.walltime or 0, partition.max_walltime, format_walltime),
        )
        for key, value, limit, show in limits:
            if value > limit:
                raise ValueError(
                    f"dask.{key}: {show(value)} is more than partition "
                    f"{self.dask.partition or self.defaults.partition!r} allows ({show(limit)}); "
                    f"lower it or pick another dask.partition"
                )


class SiteFileError(Exception):
    """A site file that cannot be used. ``str()`` is a message for the admin."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: invalid site file\n" + "\n".join(f"  - {p}" for p in problems))


_FIX_HINTS = {
    "extra_forbidden": "remove it or check its spelling against hub_config/site.example.yaml",
    "missing": "add it; see hub_config/site.example.yaml",
}


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    hint = _FIX_HINTS.get(error["type"])
    # Whole-file checks put the key path in the message itself.
    return (f"{key}: {message}" if key else message) + (f"; fix: {hint}" if hint else "")


def parse_site(data: object, path: Path | str = "<site>") -> Site:
    """Validate already-loaded YAML data; raise :class:`SiteFileError` if it is wrong."""
    if not isinstance(data, dict):
        raise SiteFileError(path, ["(top level): the file must be a YAML mapping of keys"])
    try:
        return Site.model_validate(data)
    except ValidationError as exc:
        raise SiteFileError(path, [_describe(e) for e in exc.errors()]) from None


def load_site(path: Path | str) -> Site:
    """Read and validate a site file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SiteFileError(path, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SiteFileError(
            path, [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    return parse_site(data, path)


@functools.lru_cache(maxsize=8)
def _cached(path: str, mtime_ns: int) -> Site:
    return load_site(path)


def cached_site(path: Path | str) -> Site:
    """:func:`load_site`, re-read only when the file changes."""
    return _cached(str(path), Path(path).stat().st_mtime_ns)


def is_valid_username(name: str) -> bool:
    """Whether ``name`` is a plain POSIX user name (safe as a sudo ``-u`` argument)."""
    return bool(re.fullmatch(UNIX_USERNAME, name))
