"""Say whether a venv already holds every pin of an image's requirements file.

Run with the venv's own Python: ``python requirements_met.py REQUIREMENTS``. Follows
``-r`` includes. Prints ``met`` and exits 0 when every ``name==version`` line is
installed at that version; otherwise prints what differs and exits 1, so that pip runs.
A line this check cannot judge (an unpinned name, a URL, an option) also means "run pip":
the check only ever skips work that pip would find already done.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)$")
INCLUDE = re.compile(r"^-r\s+(\S+)$")


def unmet(requirements: Path, seen: set[Path] | None = None) -> list[str]:
    """Every line of REQUIREMENTS (and its includes) the running interpreter does not satisfy."""
    seen = seen if seen is not None else set()
    requirements = requirements.resolve()
    if requirements in seen:
        return []
    seen.add(requirements)
    problems: list[str] = []
    for raw in requirements.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        include = INCLUDE.match(line)
        if include:
            problems += unmet(requirements.parent / include.group(1), seen)
            continue
        pin = PIN.match(line)
        if not pin:
            problems.append(f"{line}: not a plain pin")
            continue
        name, wanted = pin.groups()
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}: not installed")
            continue
        if "+" not in wanted:  # PEP 440: a pin without a local label ignores one (2.13.0+cpu)
            installed = installed.split("+", 1)[0]
        if installed != wanted:
            problems.append(f"{name}: {installed} installed, {wanted} pinned")
    return problems


def main(argv: list[str]) -> int:
    """Print ``met`` or the unmet lines; the exit status says which."""
    problems = unmet(Path(argv[1]))
    print("\n".join(problems) if problems else "met")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
