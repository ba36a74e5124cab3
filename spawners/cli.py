"""The ``factorylab`` command."""

from __future__ import annotations

import argparse
import sys

from .image_specs import (
    SpecError,
    definition_path,
    image_names,
    render_definition,
)
from .site import SiteFileError, load_site
from .site_auth import SecretFileError, read_client_secret


def check_site(path: str) -> int:
    """Validate a site file; print a summary or every problem. Returns an exit status."""
    try:
        site = load_site(path)
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
    args = parser.parse_args(argv)
    if args.command == "check-site":
        return check_site(args.file)
    if args.command == "image-defs":
        return image_defs(args.images_dir, args.check)
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
