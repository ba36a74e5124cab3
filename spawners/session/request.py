"""A user's choice for one session, parsed and checked against the site file.

Nothing a user typed reaches a batch script except through :class:`SessionRequest`,
whose fields are typed values already compared with the site's limits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from spawners.session.entitlements import Entitlements, partition_limits, unrestricted
from spawners.site.cluster_sections import Profile
from spawners.site.model import Site
from spawners.site.units import (
    format_memory,
    format_walltime,
    parse_memory_mib,
    parse_walltime_seconds,
)
from spawners.slurm.partitions import PartitionLoad

FIELDS = (
    "profile",
    "partition",
    "image",
    "gpus",
    "gpu_type",
    "cpus",
    "memory",
    "walltime",
    "account",
    "reservation",
)
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
    account: str | None = None
    reservation: str | None = None
    profile: str | None = None
    gpu_request: str = "gres"

    @property
    def memory(self) -> str:
        """Memory in Slurm's spelling (``4G``)."""
        return format_memory(self.memory_mib)

    @property
    def walltime(self) -> str:
        """Walltime in Slurm's spelling (``02:00:00``)."""
        return format_walltime(self.walltime_seconds)

    @property
    def gpu_option(self) -> str | None:
        """``--gres=gpu[:type]:N`` or ``--gpus=[type:]N`` (per the partition), or None."""
        if not self.gpus:
            return None
        typed = f"{self.gpu_type}:{self.gpus}" if self.gpu_type else str(self.gpus)
        return f"--gpus={typed}" if self.gpu_request == "gpus" else f"--gres=gpu:{typed}"

    def summary(self) -> str:
        """One line for people: ``gpu: 1 GPU, 2 CPUs, 4G, 02:00:00, image base``."""
        parts = [f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}"] if self.gpus else []
        parts += [f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}", self.memory, self.walltime]
        parts.append(f"image {self.image}")
        if self.account:
            parts.append(f"account {self.account}")
        if self.reservation:
            parts.append(f"reservation {self.reservation}")
        return f"{self.partition}: " + ", ".join(parts)


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
    if not (text.isascii() and text.isdigit()):
        raise InvalidRequest(field, f"must be a whole number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise InvalidRequest(field, f"{value} is outside the allowed range {low}-{high}")
    return value


def _choice(
    options: Mapping[str, object],
    field: str,
    default: str | None,
    allowed: list[str] | tuple[str, ...],
    refusal: str = "is not offered",
) -> str | None:
    text = _text(options, field)
    if text is None:
        return default
    if text not in allowed:
        offered = f"choose one of: {', '.join(allowed)}" if allowed else "leave it empty"
        raise InvalidRequest(field, f"{text!r} {refusal}; {offered}")
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


def _with_profile(
    options: Mapping[str, object], site: Site, allowed: Entitlements
) -> tuple[str | None, dict[str, object]]:
    """Expand ``profile`` into its values; fields the user set explicitly win."""
    key = _choice(options, "profile", None, allowed.profiles, "is not a profile you can use")
    merged: dict[str, object] = dict(site.profiles[key].options()) if key else {}
    for name, value in options.items():
        if name != "profile" and value not in (None, "", []):
            merged[name] = value
    return key, merged


def _check_live(request: SessionRequest, live: PartitionLoad) -> None:
    """Refuse what the partition's nodes cannot hold right now (from sinfo)."""
    if live.nodes and not live.usable_nodes:
        raise InvalidRequest(
            "partition",
            f"{request.partition!r} has no node in service right now; choose another "
            "partition or try again later",
        )
    if request.gpus and live.largest_node_gpus and request.gpus > live.largest_node_gpus:
        raise InvalidRequest(
            "gpus",
            f"at most {live.largest_node_gpus} GPUs fit on one node of {request.partition!r}",
        )
    if (
        request.gpu_type
        and live.free_gpus_by_type
        and request.gpu_type not in live.free_gpus_by_type
    ):
        raise InvalidRequest(
            "gpu_type",
            f"no {request.gpu_type} GPUs are in service in {request.partition!r}; choose one of: "
            + ", ".join(sorted(live.free_gpus_by_type)),
        )
    if live.largest_node_cpus and request.cpus > live.largest_node_cpus:
        raise InvalidRequest(
            "cpus",
            f"at most {live.largest_node_cpus} CPUs fit on one node of {request.partition!r}",
        )


def parse_request(
    options: Mapping[str, object],
    site: Site,
    allowed: Entitlements | None = None,
    live: Mapping[str, PartitionLoad] | None = None,
) -> SessionRequest:
    """Turn user options (API body, form data or query) into a :class:`SessionRequest`.

    ``allowed`` is what this user may choose (their partitions with group limits,
    profiles, accounts and reservations); without it, the site's own limits apply and
    no account or reservation may be named. ``live`` is the cluster's current state
    per partition; requests that no node could hold are refused. Unknown keys are
    refused, so a typo never silently falls back to a default.
    """
    unknown = sorted(set(options) - set(FIELDS))
    if unknown:
        raise InvalidRequest(
            str(unknown[0])[:_MAX_TEXT], f"is not a session option; use: {', '.join(FIELDS)}"
        )
    allowed = allowed or unrestricted(site)
    profile, options = _with_profile(options, site, allowed)

    partition_name = _text(options, "partition") or site.defaults.partition
    if partition_name not in allowed.partitions:
        refusal = (
            "is not open to your groups" if partition_name in site.partitions else "is not offered"
        )
        raise InvalidRequest(
            "partition",
            f"{partition_name!r} {refusal}; choose one of: {', '.join(allowed.partitions)}",
        )
    partition = site.partitions[partition_name]
    limits = allowed.partitions[partition_name]
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
        gpus = _integer(
            options, "gpus", min(partition.default_gpus, limits.max_gpus), 0, limits.max_gpus
        )
        if _text(options, "gpu_type") is None:
            gpu_type = None  # any GPU type the partition has
        elif not partition.gpu_types:
            raise InvalidRequest("gpu_type", f"partition {partition_name!r} has untyped GPUs")
        else:
            gpu_type = _choice(options, "gpu_type", "", partition.gpu_types)

    default_cpus = max(partition.default_cpus, gpus * partition.cpus_per_gpu)
    cpus = _integer(options, "cpus", min(default_cpus, limits.max_cpus), 1, limits.max_cpus)

    default_memory = partition.default_memory + gpus * (partition.mem_per_gpu or 0)
    memory_mib = _quantity(
        options,
        "memory",
        min(default_memory, limits.max_memory_mib),
        limits.max_memory_mib,
        parse_memory_mib,
        format_memory,
        partition_name,
    )
    walltime_seconds = _quantity(
        options,
        "walltime",
        min(partition.default_walltime, limits.max_walltime_seconds),
        limits.max_walltime_seconds,
        parse_walltime_seconds,
        format_walltime,
        partition_name,
    )
    account = _choice(options, "account", None, allowed.accounts, "is not one of your accounts")
    reservation = _choice(
        options,
        "reservation",
        None,
        allowed.reservations,
        "is not an active reservation you may use",
    )

    request = SessionRequest(
        partition=partition_name,
        image=image,
        gpus=gpus,
        gpu_type=gpu_type or None,
        cpus=cpus,
        memory_mib=memory_mib,
        walltime_seconds=walltime_seconds,
        account=account,
        reservation=reservation,
        profile=profile,
        gpu_request=partition.gpu_request,
    )
    if live and partition_name in live:
        _check_live(request, live[partition_name])
    return request


def check_profile(profile: Profile, site: Site) -> SessionRequest:
    """Check a site-file profile against the site's partitions, images and limits.

    Accounts and reservations are checked per user at spawn time.
    """
    values = {
        key: value
        for key, value in profile.options().items()
        if key not in ("account", "reservation")
    }
    return parse_request(values, site)


def check_profiles(site: Site) -> list[str]:
    """The site-file problems of its profiles: each must be a request the site accepts."""
    problems = []
    for key, profile in site.profiles.items():
        try:
            check_profile(profile, site)
        except InvalidRequest as exc:
            problems.append(f"profiles.{key}.{exc}; change the profile or the partition")
    return problems


def entitlements_for(
    site: Site,
    user: str,
    groups: frozenset[str],
    accounts: tuple[str, ...],
    reservations: tuple[str, ...],
) -> Entitlements:
    """One user's rights, computed once per request: their partitions' limits, and the
    profiles their limits, accounts and reservations leave usable."""
    partitions = partition_limits(site, groups)
    candidates = tuple(
        key
        for key, profile in site.profiles.items()
        if (not profile.groups or set(profile.groups) & groups) and profile.partition in partitions
    )
    draft = Entitlements(user, groups, partitions, candidates, accounts, reservations)
    usable = []
    for key in candidates:  # hide profiles this user's limits, accounts or reservations rule out
        try:
            parse_request({"profile": key}, site, draft)
        except InvalidRequest:
            continue
        usable.append(key)
    return Entitlements(user, groups, partitions, tuple(usable), accounts, reservations)
