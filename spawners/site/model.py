"""The site file: one YAML document that describes what a FactoryLab site offers.

It is validated with pydantic when the hub starts and by ``factorylab check-site``.
Every error names the file, the key and the fix; an invalid file stops the hub
instead of failing later at spawn time. ``hub_config/site.example.yaml`` documents
every key with its default.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, model_validator

from spawners.site.auth import AuthSettings
from spawners.site.cluster_sections import (
    AccountSettings,
    Defaults,
    GroupLimit,
    Image,
    Partition,
    Profile,
    ReservationSettings,
    SlurmSettings,
)
from spawners.site.course_sections import Course
from spawners.site.hub_sections import DEMO_PUBLIC_CONSENT, DemoSettings, HubSettings, UserSettings
from spawners.site.kernel_sections import Kernel
from spawners.site.session_sections import (
    DaskSettings,
    IdleSettings,
    NotebookSettings,
    WalltimeSettings,
)
from spawners.site.types import SlurmName, Strict
from spawners.site.units import format_memory, format_walltime


def course_problem(course: Course, site: Site) -> str | None:
    """What in ``course`` the site file itself rules out (``field: why; fix``), or None."""
    if site.hub.named_servers < 1:
        return "name: courses run as named servers; set hub.named_servers to 1 or more"
    if isinstance(course.profile, str) and course.profile not in site.profiles:
        return (
            f"profile: {course.profile!r} is not one of the profiles "
            f"({', '.join(site.profiles) or 'none'}); name one, or give a request"
        )
    return None


class Site(Strict):
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
    kernels: dict[SlurmName, Kernel] = Field(default_factory=dict)
    accounts: AccountSettings = AccountSettings()
    reservations: ReservationSettings = ReservationSettings()
    group_limits: dict[SlurmName, GroupLimit] = Field(default_factory=dict)
    dask: DaskSettings = DaskSettings()
    notebooks: NotebookSettings = NotebookSettings()
    idle: IdleSettings = IdleSettings()
    walltime: WalltimeSettings = WalltimeSettings()
    courses: list[Course] = Field(default_factory=list, max_length=500)

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
        self._check_courses()
        return self

    def _check_courses(self) -> None:
        seen: set[str] = set()
        for course in self.courses:
            if course.name in seen:
                raise ValueError(f"courses: two courses are named {course.name!r}; rename one")
            seen.add(course.name)
            problem = course_problem(course, self)
            if problem:
                raise ValueError(f"courses.{course.name}.{problem}")

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
