"""The site file's ``courses:`` section, also the body of the hub's course API.

A course is a roster (users and/or a Unix group), a session request (a profile or a
course's own request), a window with a warm pre-start, an optional Slurm reservation and
optional material pulled into each member's home. The same model checks a course from
the site file and from ``POST /hub/api/factorylab/courses``; what needs the cluster
(users, groups, reservations, each member's limits) is checked by
:mod:`spawners.session.course_checks`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AwareDatetime, Field, StringConstraints, field_validator, model_validator

from spawners.site.types import UNIX_USERNAME, SlurmName, Strict

#: Course names become named servers, URL segments and folder names. JupyterHub takes
#: only "safe slugs" as server names: 1-30 of a-z, 0-9 and single hyphens, from a letter
#: to a letter or digit (jupyterhub.slugs.is_valid_safe_slug).
COURSE_NAME = r"^(?=.{1,30}$)[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
#: The same, for URL routes (the handlers answer 404 to anything else).
COURSE_ROUTE = r"([a-z][a-z0-9-]{0,29})"
UserName = Annotated[str, Field(pattern=UNIX_USERNAME)]
#: A git URL (https, ssh, file) or an absolute path to a repository the nodes can read.
MATERIAL = r"^(?:(?:https?|ssh|git|file)://[A-Za-z0-9_.~:@/%+-]+|/[A-Za-z0-9_./+-]+)$"
#: A notebook inside the material: a relative path of plain parts, ending in .ipynb.
OPEN_PATH = r"^(?!.*(?:^|/)\.)[A-Za-z0-9_][A-Za-z0-9_./+-]*\.ipynb$"
#: What a course's own request may set (account: the member's own; reservation: below).
REQUEST_FIELDS = ("partition", "image", "gpus", "gpu_type", "cpus", "memory")


class Course(Strict):
    """One course: who, what they get, when, and the material."""

    name: str = Field(
        description="The course's id: its named server, /hub/course/NAME and ~/courses/NAME."
    )
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    members: list[UserName] = Field(default_factory=list, max_length=2000)
    group: SlurmName | None = Field(None, description="A Unix group whose users are members.")
    instructors: list[UserName] = Field(default_factory=list, max_length=50)
    profile: SlurmName | dict[str, str | int] = Field(
        description="One of the site's profiles, or a request: partition, image, gpus, "
        "gpu_type, cpus, memory. It is checked against every member's own limits."
    )
    reservation: SlurmName | None = Field(
        None,
        description="A Slurm reservation the course's sessions run in; it must exist, "
        "cover the pre-start to the end, and admit every member.",
    )
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    prestart_minutes: int = Field(
        10, ge=1, le=240, description="Start members' sessions this long before starts_at."
    )
    material: Annotated[str, Field(pattern=MATERIAL, max_length=300)] | None = Field(
        None, description="A git repository (URL or path) pulled into ~/courses/NAME."
    )
    material_branch: SlurmName | None = Field(
        None, description="The branch to pull; default: the repository's default branch."
    )
    open: Annotated[str, Field(max_length=200)] | None = Field(
        None,
        description="A notebook in the material that members land in, its kernel already "
        "started by the pre-start (e.g. lesson/01-start.ipynb).",
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not re.fullmatch(COURSE_NAME, name):
            raise ValueError(
                f"{name[:60]!r} has unsafe characters; use 1-30 lowercase letters, digits "
                f"and single hyphens, from a letter to a letter or digit (JupyterHub's "
                f"rule for server names)"
            )
        return name

    @field_validator("open")
    @classmethod
    def _plain_notebook(cls, path: str | None) -> str | None:
        if path is not None and not re.fullmatch(OPEN_PATH, path):
            raise ValueError(
                f"{path[:60]!r} is not a notebook in the material; give a relative path "
                f"of plain names ending in .ipynb, e.g. lesson/01-start.ipynb"
            )
        return path

    @model_validator(mode="after")
    def _consistent(self) -> Course:
        if self.ends_at <= self.starts_at:
            raise ValueError(
                f"ends_at: {self.ends_at.isoformat()} is not after starts_at "
                f"{self.starts_at.isoformat()}; end the course after it starts"
            )
        if self.open and not self.material:
            raise ValueError("open: a notebook to open needs the course's material")
        if not self.members and not self.group:
            raise ValueError("members: a course needs members, a group, or both")
        if isinstance(self.profile, dict):
            unknown = sorted(set(self.profile) - set(REQUEST_FIELDS))
            if unknown:
                raise ValueError(
                    f"profile: {unknown[0]!r} cannot be set by a course; use: "
                    f"{', '.join(REQUEST_FIELDS)}"
                )
        return self

    @property
    def prestart_at(self):
        """When members' sessions are started (``starts_at`` less the pre-start)."""
        return self.starts_at - timedelta(minutes=self.prestart_minutes)

    @property
    def folder(self) -> str:
        """Where the material goes, relative to the member's home."""
        return f"courses/{self.name}"
