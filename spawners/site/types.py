"""The shared types of the site file: the one home of the name and path rules.

Every name that ends up in an ``#SBATCH`` line, a path or a ``sudo -u`` argument is
checked against one of these patterns, here and nowhere else.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from spawners.site.units import parse_memory_mib, parse_walltime_seconds

# Names that end up in #SBATCH lines or paths: conservative on purpose.
SLURM_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# A plain POSIX user name: safe as a sudo -u argument and in a path.
UNIX_USERNAME = r"^[a-z_][a-z0-9_-]{0,31}$"

MemoryMiB = Annotated[int, BeforeValidator(parse_memory_mib)]
WalltimeSeconds = Annotated[int, BeforeValidator(parse_walltime_seconds)]
SlurmName = Annotated[str, Field(pattern=SLURM_NAME)]


class Strict(BaseModel):
    """A site-file section: unknown keys are errors, and values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def is_valid_username(name: str) -> bool:
    """Whether ``name`` is a plain POSIX user name (safe as a sudo ``-u`` argument).

    >>> is_valid_username("demo01"), is_valid_username("../root"), is_valid_username("Ada")
    (True, False, False)
    """
    return bool(re.fullmatch(UNIX_USERNAME, name))
