"""The ``factorylab`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import pwd
import sys

from spawners.doctor import diagnose
from spawners.hub.options import check_request, user_entitlements
from spawners.session.job import render_job_script, session_job_spec
from spawners.session.kernels import kernelspecs_for
from spawners.session.request import InvalidRequest
from spawners.session.site_checks import SITE_CHECKS
from spawners.site.auth import SecretFileError, read_client_secret
from spawners.site.images import SpecError, definition_path, image_names, render_definition
from spawners.site.loader import SiteFileError, load_site
from spawners.slurm.services import shared_cluster_state


def check_site(path: str) -> int:
    """Validate a site file; print a summary or every problem. Returns an exit status."""
    try:
        site = load_site(path, SITE_CHECKS)
        if site.auth.oidc is not None and site.auth.method == "oidc":
            read_client_secret(site.auth.oidc.client_secret_file)
    except SiteFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SecretFileError as exc:
        print(SiteFileError(path, [str(exc)]), file=sys.stderr)
        return 2
    print(
        f"{path}: valid. Login: {site.auth.method}; partitions: {', '.join(site.partitions)}; "
        f"images: {', '.join(site.images)}; "
        f"default: {site.defaults.partition}/{site.defaults.image}."
    )
    return 0


def image_defs(images_dir: str, check: bool) -> int:
    """Render every image's Apptainer definition; with ``check``, only report stale ones."""
    stale = []
    try:
        for name in image_names(images_dir):
            text = render_definition(images_dir, name)
            path = definition_path(images_dir, name)
            current = path.read_text() if path.exists() else None
            if current == text:
                continue
            stale.append(str(path))
            if not check:
                path.write_text(text)
                print(f"wrote {path}")
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    if check and stale:
        print(
            "out of date: " + ", ".join(stale) + "; run `factorylab image-defs` and commit",
            file=sys.stderr,
        )
        return 1
    return 0


def job_script(path: str, user: str, options: str, server_name: str) -> int:
    """Print the batch script a spawn with ``options`` would submit for ``user``.

    The request goes through the same checks as a spawn (:func:`check_request`): the
    site file, the user's groups, accounts and reservations, and what is free now. The
    script
    is the one the hub submits, less what JupyterHub adds at spawn time: its own
    ``JUPYTERHUB_*`` variables with the server's token, and the hub's signature.
    """
    try:
        site = load_site(path, SITE_CHECKS)
        chosen = json.loads(options)
        if not isinstance(chosen, dict):
            raise ValueError('--options must be a JSON object, e.g. \'{"profile": "cpu"}\'')
        account = pwd.getpwnam(user)
    except SiteFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (ValueError, KeyError) as exc:
        reason = f"no user named {user!r}" if isinstance(exc, KeyError) else str(exc)
        print(f"factorylab job-script: {reason}", file=sys.stderr)
        return 2

    async def checked() -> tuple:
        cluster = shared_cluster_state(site)
        request = await check_request(site, user, chosen, cluster)
        return request, kernelspecs_for(site, request, await user_entitlements(site, user, cluster))

    try:
        request, kernelspecs = asyncio.run(checked())
    except InvalidRequest as exc:
        print(f"Your session would not be submitted. {exc}", file=sys.stderr)
        return 1
    try:
        spec = session_job_spec(
            site, request, user, account.pw_dir, server_name, kernelspecs=kernelspecs
        )
        script = render_job_script(spec)
    except ValueError as exc:
        print(f"factorylab job-script: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(script)
    return 0


def doctor(path: str, hub_user: str, probe: bool = True, dask: bool = False) -> int:
    """Check a site file against the cluster this runs on; print one line a check."""
    try:
        site = load_site(path, SITE_CHECKS)
    except SiteFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    lines, status = diagnose(site, hub_user, probe=probe, dask=dask)
    print("\n".join(lines))
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``factorylab`` console script."""
    parser = argparse.ArgumentParser(prog="factorylab", description="FactoryLab site tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-site", help="validate a site file without starting a hub")
    check.add_argument("file")
    defs = commands.add_parser(
        "image-defs", help="render images/<name>/<name>.def from each image's spec"
    )
    defs.add_argument("--images-dir", default="images")
    defs.add_argument("--check", action="store_true", help="fail if a .def is out of date")
    script = commands.add_parser(
        "job-script", help="print the batch script a spawn would submit, after the same checks"
    )
    script.add_argument("file", help="the site file")
    script.add_argument("--user", required=True, help="the Unix user the session is for")
    script.add_argument("--options", default="{}", help="user options as JSON, as the API takes")
    script.add_argument("--server", default="", help="the named server (default: none)")
    checkup = commands.add_parser(
        "doctor",
        help="check the site file against this cluster: Slurm, munge, sudo, and a probe job "
        "on every node (names, home, images, network both ways, clock)",
    )
    checkup.add_argument("file", help="the site file")
    checkup.add_argument("--hub-user", default="factorylab", help="the account the hub runs as")
    checkup.add_argument(
        "--no-probes", action="store_true", help="submit no probe jobs (the checks from here only)"
    )
    checkup.add_argument(
        "--dask",
        action="store_true",
        help="also: a Dask worker on one node joins a scheduler on another",
    )
    args = parser.parse_args(argv)
    if args.command == "check-site":
        return check_site(args.file)
    if args.command == "doctor":
        return doctor(args.file, args.hub_user, probe=not args.no_probes, dask=args.dask)
    if args.command == "job-script":
        return job_script(args.file, args.user, args.options, args.server)
    if args.command == "image-defs":
        return image_defs(args.images_dir, args.check)
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
