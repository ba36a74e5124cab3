"""Notebook kernels as Slurm jobs of their own: which a user may open, and their kernelspecs.

A session's Launcher lists the site's ``kernels:`` its user may use. Opening one runs
the ``factorylab-slurm`` kernel provisioner (images/base/overlay) inside the session: it
asks the hub to check the kernel's request (:func:`kernel_request`, the rules of a
session request) and to render its batch script (:mod:`.kernel_job`), then submits it
as the user. The kernelspec's values are the user's to edit, so the hub checks them
again at every launch, and never trusts them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from spawners.session.entitlements import Entitlements
from spawners.session.request import InvalidRequest, SessionRequest, parse_request
from spawners.site.kernel_sections import Kernel
from spawners.site.model import Site

#: The provisioner's name in the ``jupyter_client.kernel_provisioners`` entry point.
PROVISIONER = "factorylab-slurm"
#: Kernelspec directories are ``slurm-<kernel>`` (apart from the images' ``factorylab-<image>``).
SPEC_PREFIX = "slurm-"
#: Kernel job ids the provisioner makes up (a uuid4); the name of its private directory.
KERNEL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: What a kernelspec's provisioner ``config`` may hold; anything else is refused.
SPEC_OPTIONS = ("partition", "image", "gpus", "gpu_type", "cpus", "memory", "walltime")


def kernel_job_name(job_name: str, session_job_id: str) -> str:
    """The Slurm job name of a session's kernel jobs: the hub cancels them by it.

    Named after the session's own job, so it is unique and short whatever the user's
    and the server's names.

    >>> kernel_job_name("factorylab", "4242")
    'factorylab-kernel-4242'
    """
    return f"{job_name}-kernel-{session_job_id}"


def kernel_options(kernel: Kernel) -> dict[str, str]:
    """A site kernel's request, as session options (no account, no reservation)."""
    options = kernel.options()
    return {key: value for key, value in options.items() if key in SPEC_OPTIONS}


def check_kernels(site: Site) -> list[str]:
    """The site-file problems of its kernels: each must be a request the site accepts."""
    problems = []
    for key, kernel in site.kernels.items():
        if kernel.account or kernel.reservation:
            problems.append(
                f"kernels.{key}: a kernel names no account or reservation (a kernel job is "
                "charged as its session); remove the key"
            )
            continue
        try:
            parse_request(kernel_options(kernel), site)
        except InvalidRequest as exc:
            problems.append(f"kernels.{key}.{exc}; change the kernel or the partition")
    return problems


def usable_kernels(site: Site, allowed: Entitlements) -> list[str]:
    """The site's kernels this user may open, in the site file's order."""
    usable = []
    for key, kernel in site.kernels.items():
        if kernel.groups and not set(kernel.groups) & allowed.groups:
            continue
        try:
            parse_request(kernel_options(kernel), site, allowed)
        except InvalidRequest:
            continue
        usable.append(key)
    return usable


def kernel_request(
    site: Site, name: object, options: object, allowed: Entitlements
) -> tuple[Kernel, SessionRequest]:
    """Check a launch: the kernel's name and its kernelspec's values, as the user sent them.

    Raises :class:`InvalidRequest` with a sentence; nothing is submitted then.
    """
    if not isinstance(name, str) or name not in site.kernels:
        offered = ", ".join(site.kernels) or "none"
        raise InvalidRequest(
            "kernel", f"{str(name)[:64]!r} is not one of this site's kernels ({offered})"
        )
    kernel = site.kernels[name]
    if name not in usable_kernels(site, allowed):
        raise InvalidRequest(
            "kernel", f"{name!r} is not open to you; use a kernel the Launcher shows"
        )
    if not isinstance(options, Mapping):
        raise InvalidRequest("kernel", "its kernelspec's config must be a mapping of options")
    unknown = sorted(str(key)[:64] for key in options if key not in SPEC_OPTIONS)
    if unknown:
        raise InvalidRequest(unknown[0], f"is not a kernel option; use: {', '.join(SPEC_OPTIONS)}")
    request = parse_request(dict(options), site, allowed)
    return kernel, request


def kernelspec(site: Site, name: str, python: str) -> dict:
    """The ``kernel.json`` of a site kernel, for a session whose image has ``python``.

    ``argv`` is what a local launch would run; the provisioner runs the kernel in its own
    job instead (the image the kernel names, on its node), and interrupts by message.
    """
    kernel = site.kernels[name]
    return {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"{kernel.display_name} (Slurm job)",
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {
            "supported_encryption": ["curve"],
            "kernel_provisioner": {
                "provisioner_name": PROVISIONER,
                "config": {"kernel": name, "options": kernel_options(kernel)},
            },
            "factorylab": {"idle_limit": kernel.idle_limit},
        },
    }


def kernelspecs_for(site: Site, request: SessionRequest, allowed: Entitlements) -> dict[str, dict]:
    """The kernelspecs of a session with ``request`` (none when the site has no kernels)."""
    if not site.kernels:
        return {}
    python = f"{site.images[request.image].venv.rstrip('/')}/bin/python"
    return session_kernelspecs(site, allowed, python)


def session_kernelspecs(site: Site, allowed: Entitlements, python: str) -> dict[str, dict]:
    """Every kernelspec a session gets: ``{directory name: kernel.json}``."""
    return {
        SPEC_PREFIX + key: kernelspec(site, key, python) for key in usable_kernels(site, allowed)
    }
