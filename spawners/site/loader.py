"""Reading a site file: YAML, then the model, then any checks of the layers above.

Every problem is reported at once, naming the file, the key and the fix.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from spawners.site.model import Site

SiteCheck = Callable[[Site], list[str]]
"""A further check of a valid site (the session rules check profiles): its problems."""


class SiteFileError(Exception):
    """A site file that cannot be used. ``str()`` is a message for the admin."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: invalid site file\n" + "\n".join(f"  - {p}" for p in problems))


_FIX_HINTS = {
    "extra_forbidden": "remove it or check its spelling against hub_config/site.example.yaml",
    "missing": "add it; see hub_config/site.example.yaml",
}


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    hint = _FIX_HINTS.get(error["type"])
    # Whole-file checks put the key path in the message itself.
    return (f"{key}: {message}" if key else message) + (f"; fix: {hint}" if hint else "")


def parse_site(data: object, path: Path | str = "<site>", checks: Sequence[SiteCheck] = ()) -> Site:
    """Validate already-loaded YAML data; raise :class:`SiteFileError` if it is wrong.

    ``checks`` are the upper layers' rules about a valid site (say, that every profile
    is a session request the site accepts); their problems are reported the same way.
    """
    if not isinstance(data, dict):
        raise SiteFileError(path, ["(top level): the file must be a YAML mapping of keys"])
    try:
        site = Site.model_validate(data)
    except ValidationError as exc:
        raise SiteFileError(path, [_describe(e) for e in exc.errors()]) from None
    problems = [problem for check in checks for problem in check(site)]
    if problems:
        raise SiteFileError(path, problems)
    return site


def load_site(path: Path | str, checks: Sequence[SiteCheck] = ()) -> Site:
    """Read and validate a site file (see :func:`parse_site` for ``checks``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SiteFileError(path, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SiteFileError(
            path, [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    return parse_site(data, path, checks)


@functools.lru_cache(maxsize=8)
def _cached(path: str, mtime_ns: int, checks: tuple[SiteCheck, ...]) -> Site:
    return load_site(path, checks)


def cached_site(path: Path | str, checks: Sequence[SiteCheck] = ()) -> Site:
    """:func:`load_site`, re-read only when the file changes."""
    return _cached(str(path), Path(path).stat().st_mtime_ns, tuple(checks))
