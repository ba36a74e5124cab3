"""The spawn form: profile cards, an advanced section and live availability.

:func:`render_form` turns a user's :class:`~spawners.session.entitlements.Entitlements`, the
shared :class:`~spawners.slurm.cluster.ClusterState` and their last choice into HTML
(a Jinja2 template with its own small JS and CSS, served by the hub).
:func:`options_from_form` turns the posted form, or ``opt-`` query parameters, back
into user options; they are validated like any API body before anything is submitted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2

from spawners.session.entitlements import Entitlements
from spawners.session.request import FIELDS, InvalidRequest, SessionRequest, parse_request
from spawners.site.model import Site
from spawners.site.units import format_memory, format_walltime
from spawners.slurm.cluster import ClusterState
from spawners.slurm.partitions import PartitionLoad

CUSTOMISE = "customise"
STATIC_ROUTE = r"/factorylab/static/(.*)"
STATIC_DIR = Path(__file__).parent / "static"

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates" / "form"),
    undefined=jinja2.StrictUndefined,
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def options_from_form(formdata: Mapping[str, list[str]]) -> dict[str, str]:
    """User options from posted form data (or ``opt-`` query parameters).

    With a profile and no ``customise`` tick, only the profile is kept, so the card
    means what it says. Otherwise every non-empty field is kept. Nothing is checked
    here: :func:`~spawners.session.request.parse_request` checks it all.
    """
    values = {}
    for key, raw in formdata.items():
        items = raw if isinstance(raw, list) else [raw]
        if key in FIELDS and items and any(str(item).strip() for item in items):
            values[key] = items[0] if len(items) == 1 else items
    customised = CUSTOMISE in formdata and any(
        str(item) in ("on", "1", "true") for item in formdata[CUSTOMISE]
    )
    if values.get("profile") and not customised:
        return {"profile": values["profile"]}
    return values


def _describe_load(load: PartitionLoad | None, kind: str) -> str:
    if load is None:
        return "no figures for this partition"
    if load.nodes and not load.usable_nodes:
        return "no node in service right now"
    text = f"{load.free_cpus} of {load.total_cpus} CPUs free"
    if kind == "gpu":
        by_type = ", ".join(
            f"{count} {name or 'GPU'}" for name, count in load.free_gpus_by_type.items()
        )
        text = f"{load.free_gpus} of {load.total_gpus} GPUs free ({by_type}); " + text
    return text


def _resolve(options: Mapping[str, object], site: Site, allowed: Entitlements) -> SessionRequest:
    """The request a remembered choice stands for, or the first profile / defaults."""
    for candidate in (options, {"profile": allowed.profiles[0]} if allowed.profiles else {}, {}):
        try:
            return parse_request(candidate, site, allowed)
        except InvalidRequest:
            continue
    raise InvalidRequest("partition", "no partition is open to you; ask the site's support")


def render_form(
    site: Site,
    allowed: Entitlements,
    state: ClusterState,
    chosen: Mapping[str, object],
    static_url: str,
    now: float | None = None,
    courses: Sequence[Mapping[str, str]] = (),
) -> str:
    """The form's HTML for one user. ``chosen`` prefills it (last or refused choice);
    ``courses`` are the user's open courses (name, title, ends, url), as cards."""
    now = time.time() if now is None else now
    request = _resolve(chosen, site, allowed)
    profile_requests = {
        key: parse_request({"profile": key}, site, allowed) for key in allowed.profiles
    }
    selected_profile = (
        str(chosen.get("profile"))
        if chosen.get("profile") in allowed.profiles
        else (None if chosen else next(iter(allowed.profiles), None))
    )
    customised = bool(chosen) and (selected_profile is None or set(chosen) - {"profile"} != set())
    partitions = {}
    for name, limits in allowed.partitions.items():
        partition = site.partitions[name]
        load = state.partitions.get(name)
        partitions[name] = {
            "kind": partition.kind,
            "description": partition.description,
            "gpu_types": partition.gpu_types,
            "max_gpus": limits.max_gpus,
            "max_cpus": limits.max_cpus,
            "max_memory": format_memory(limits.max_memory_mib),
            "max_walltime": format_walltime(limits.max_walltime_seconds),
            "free_cpus": load.free_cpus if load else None,
            "free_gpus": load.free_gpus if load else None,
            "load": _describe_load(load, partition.kind) if state.taken_at else None,
        }
    profiles = []
    for key in allowed.profiles:
        profile, resolved = site.profiles[key], profile_requests[key]
        load = state.partitions.get(resolved.partition)
        free = (load.free_gpus if resolved.gpus else load.free_cpus) if load else None
        need = resolved.gpus or resolved.cpus
        profiles.append(
            {
                "key": key,
                "title": profile.display_name,
                "description": profile.description,
                "summary": resolved.summary(),
                "values": _field_values(resolved),
                "free": free,
                "free_unit": "GPUs" if resolved.gpus else "CPUs",
                "starts_now": None if free is None else free >= need,
            }
        )
    values = _field_values(request)
    for key in values:  # a refused choice comes back as typed, so nothing is lost
        raw = chosen.get(key)
        raw = raw[0] if isinstance(raw, list) and raw else raw
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            values[key] = str(raw)[:64]
    age = int(now - state.taken_wall) if state.taken_wall else None
    return _environment.get_template("spawn_form.html.j2").render(
        static_url=static_url.rstrip("/"),
        courses=list(courses),
        profiles=profiles,
        selected_profile=selected_profile,
        customised=customised,
        values=values,
        current_partition=request.partition,
        partitions=partitions,
        images={name: image.description for name, image in site.images.items()},
        accounts=allowed.accounts,
        reservations=allowed.reservations,
        availability_age=age,
        availability_error=state.error,
        interval=int(site.slurm.availability_interval),
        data={"partitions": partitions, "profiles": {p["key"]: p["values"] for p in profiles}},
    )


def _field_values(request: SessionRequest) -> dict[str, str]:
    return {
        "partition": request.partition,
        "image": request.image,
        "gpus": str(request.gpus),
        "gpu_type": request.gpu_type or "",
        "cpus": str(request.cpus),
        "memory": request.memory,
        "walltime": request.walltime,
        "account": request.account or "",
        "reservation": request.reservation or "",
    }
