"""A user's choice for one session, parsed and checked against the site file.

Nothing a user typed reaches a batch script except through :class:`SessionRequest`,
whose fields are typed values already compared with the site's limits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .site import Site
from .units import format_memory, format_walltime, parse_memory_mib, parse_walltime_seconds

FIELDS = ("partition", "image", "gpus", "gpu_type", "cpus", "memory", "walltime")
_MAX_TEXT = 64


class InvalidRequest(ValueError):
    """A refused choice. ``field`` names the form field; ``str()`` says what to do."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class SessionRequest:
    """A validated session: every value here is safe to render into a batch script."""

    partition: str
    image: str
    gpus: int
    gpu_type: str | None
    cpus: int
    memory_mib: int
    walltime_seconds: int

    @property
    def memory(self) -> str:
        """Memory in Slurm's spelling (``4G``)."""
        return format_memory(self.memory_mib)

    @property
    def walltime(self) -> str:
        """Walltime in Slurm's spelling (``02:00:00``)."""
        return format_walltime(self.walltime_seconds)

    @property
    def gres(self) -> str | None:
        """The ``--gres`` value, or None for a CPU session."""
        if not self.gpus:
            return None
        return f"gpu:{self.gpu_type}:{self.gpus}" if self.gpu_type else f"gpu:{self.gpus}"


def _text(options: Mapping[str, object], field: str) -> str | None:
    value = options.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, list):  # form posts arrive as lists of one value
        if len(value) != 1:
            raise InvalidRequest(field, "give exactly one value")
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(field, "must be a single value")
    text = str(value).strip()
    if len(text) > _MAX_TEXT:
        raise InvalidRequest(field, f"is longer than {_MAX_TEXT} characters")
    if not text.isprintable():
        raise InvalidRequest(field, "contains control characters such as a newline; remove them")
    return text


def _integer(options: Mapping[str, object], field: str, default: int, low: int, high: int) -> int:
    text = _text(options, field)
    if text is None:
        return default
    if not text.isdigit():
        raise InvalidRequest(field, f"must be a whole number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise InvalidRequest(field, f"{value} is outside the allowed range {low}-{high}")
    return value


def _choice(options: Mapping[str, object], field: str, default: str, allowed: list[str]) -> str:
    text = _text(options, field)
    if text is None:
        return default
    if text not in allowed:
        raise InvalidRequest(field, f"{text!r} is not offered; choose one of: {', '.join(allowed)}")
    return text


def _quantity(
    options: Mapping[str, object],
    field: str,
    default: int,
    maximum: int,
    parse: Callable[[str], int],
    spell: Callable[[int], str],
    partition_name: str,
) -> int:
    """A memory size or walltime: parsed with ``parse``, at most ``maximum``."""
    text = _text(options, field)
    if text is None:
        return default
    try:
        value = parse(text)
    except ValueError as exc:
        raise InvalidRequest(field, str(exc)) from None
    if value > maximum:
        raise InvalidRequest(field, f"at most {spell(maximum)} on partition {partition_name!r}")
    return value


def parse_request(options: Mapping[str, object], site: Site) -> SessionRequest:
    """Turn user options (API body or form data) into a :class:`SessionRequest`.

    Unknown keys are refused, so a typo never silently falls back to a default.
    """
    unknown = sorted(set(options) - set(FIELDS))
    if unknown:
        raise InvalidRequest(
            str(unknown[0])[:_MAX_TEXT], f"is not a session option; use: {', '.join(FIELDS)}"
        )
    partition_name = _choice(options, "partition", site.defaults.partition, list(site.partitions))
    partition = site.partitions[partition_name]
    image = _choice(options, "image", site.defaults.image, list(site.images))

    if partition.kind == "cpu":
        if _text(options, "gpus") not in (None, "0"):
            raise InvalidRequest(
                "gpus", f"partition {partition_name!r} has no GPUs; choose a gpu partition"
            )
        if _text(options, "gpu_type") is not None:
            raise InvalidRequest("gpu_type", f"partition {partition_name!r} has no GPUs")
        gpus, gpu_type = 0, None
    else:
        gpus = _integer(options, "gpus", partition.default_gpus, 0, partition.max_gpus)
        if _text(options, "gpu_type") is None:
            gpu_type = None  # any GPU type the partition has
        elif not partition.gpu_types:
            raise InvalidRequest("gpu_type", f"partition {partition_name!r} has untyped GPUs")
        else:
            gpu_type = _choice(options, "gpu_type", "", partition.gpu_types)

    default_cpus = max(partition.default_cpus, gpus * partition.cpus_per_gpu)
    cpus = _integer(options, "cpus", min(default_cpus, partition.max_cpus), 1, partition.max_cpus)

    default_memory = partition.default_memory + gpus * (partition.mem_per_gpu or 0)
    memory_mib = _quantity(
        options,
        "memory",
        min(default_memory, partition.max_memory),
        partition.max_memory,
        parse_memory_mib,
        format_memory,
        partition_name,
    )
    walltime_seconds = _quantity(
        options,
        "walltime",
        partition.default_walltime,
        partition.max_walltime,
        parse_walltime_seconds,
        format_walltime,
        partition_name,
    )

    return SessionRequest(
        partition=partition_name,
        image=image,
        gpus=gpus,
        gpu_type=gpu_type,
        cpus=cpus,
        memory_mib=memory_mib,
        walltime_seconds=walltime_seconds,
    )
