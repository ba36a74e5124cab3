"""The ``factorylab`` command."""

from __future__ import annotations

import argparse
import sys

from .site import SiteFileError, load_site


def check_site(path: str) -> int:
    """Validate a site file; print a summary or every problem. Returns an exit status."""
    try:
        site = load_site(path)
    except SiteFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(
        f"{path}: valid. Partitions: {', '.join(site.partitions)}; "
        f"images: {', '.join(site.images)}; "
        f"default: {site.defaults.partition}/{site.defaults.image}."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``factorylab`` console script."""
    parser = argparse.ArgumentParser(prog="factorylab", description="FactoryLab site tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-site", help="validate a site file without starting a hub")
    check.add_argument("file")
    args = parser.parse_args(argv)
    if args.command == "check-site":
        return check_site(args.file)
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
