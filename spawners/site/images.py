"""Image specs: one pinned requirements file per image, two build targets.

``images/<name>/requirements.txt`` is the spec. An image builds on another with a
``-r ../<parent>/requirements.txt`` line (every image builds on ``base``). Besides its
pins, a spec names the modules that prove the image works (``# imports: a b``).

Target one is a venv (``make images``, ansible role ``envs``); target two is
``images/<name>/<name>.def``, an Apptainer definition rendered from
``images/apptainer.def.j2`` by ``factorylab image-defs``, that installs the very same
files. Files under ``images/<name>/overlay/`` go into the environment in both targets:
top-level ``*.pth`` files and ``overlay/site-packages/`` into its site-packages, the
rest under its prefix (``etc/``, ``share/``); and ``images/<name>/post-install.sh``
runs after the install in both, with ``VENV`` set (to warm caches, say).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

_INCLUDE = re.compile(r"^-r\s+\.\./([A-Za-z0-9_-]+)/requirements\.txt\s*$")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)\s*(?:#.*)?$")
_IMPORTS = re.compile(r"^#\s*imports:\s*(.+)$")
SPEC = "requirements.txt"
OVERLAY = "overlay"
POST_INSTALL = "post-install.sh"
ENVS_PREFIX = "/opt/factorylab/envs"


class SpecError(ValueError):
    """A spec that cannot be built as written; the message names the file and line."""


@dataclass(frozen=True)
class ImageSpec:
    """One image's spec, with the specs it builds on (``chain``, base first)."""

    name: str
    chain: tuple[str, ...]
    pins: dict[str, str]
    imports: tuple[str, ...]

    @property
    def venv(self) -> str:
        """Where both targets put the environment."""
        return f"{ENVS_PREFIX}/{self.name}"

    @property
    def spec_files(self) -> list[str]:
        """The requirements files the spec reads, relative to ``images/``, base first."""
        return [f"{name}/{SPEC}" for name in self.chain]


def _read(images_dir: Path, name: str) -> tuple[list[str], dict[str, str], list[str]]:
    path = images_dir / name / SPEC
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror})") from None
    parents, pins, imports = [], {}, []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if match := _IMPORTS.match(line):
            imports += match.group(1).split()
        elif not line or line.startswith("#"):
            continue
        elif match := _INCLUDE.match(line):
            parents.append(match.group(1))
        elif match := _PIN.match(line):
            pins[match.group(1).lower()] = match.group(2)
        else:
            raise SpecError(
                f"{path}:{number}: {line!r} is not a pin; write NAME==VERSION "
                "(or -r ../IMAGE/requirements.txt to build on another image)"
            )
    return parents, pins, imports


def load_spec(images_dir: Path | str, name: str) -> ImageSpec:
    """Read ``images/<name>`` and the specs it builds on."""
    images_dir = Path(images_dir)
    chain: list[str] = []
    pins: dict[str, str] = {}
    imports: list[str] = []

    def visit(current: str, seen: tuple[str, ...]) -> None:
        if current in seen:
            raise SpecError(f"{images_dir / current / SPEC}: includes itself via {seen}")
        parents, own_pins, own_imports = _read(images_dir, current)
        for parent in parents:
            visit(parent, (*seen, current))
        if current not in chain:
            chain.append(current)
            pins.update(own_pins)
            imports.extend(own_imports)

    visit(name, ())
    return ImageSpec(name, tuple(chain), pins, tuple(dict.fromkeys(imports)))


def image_names(images_dir: Path | str) -> list[str]:
    """Every image with a spec, sorted."""
    return sorted(path.parent.name for path in Path(images_dir).glob(f"*/{SPEC}"))


def overlay_files(images_dir: Path | str, spec: ImageSpec) -> list[str]:
    """Overlay files of the image and the images it builds on, relative to ``images/``."""
    images_dir = Path(images_dir)
    files = []
    for name in spec.chain:
        root = images_dir / name / OVERLAY
        files += sorted(
            str(path.relative_to(images_dir)) for path in root.rglob("*") if path.is_file()
        )
    return files


def post_install_scripts(images_dir: Path | str, spec: ImageSpec) -> list[str]:
    """The post-install scripts of the image and those it builds on, base first."""
    images_dir = Path(images_dir)
    return [
        f"{name}/{POST_INSTALL}"
        for name in spec.chain
        if (images_dir / name / POST_INSTALL).exists()
    ]


_templates = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)


def render_definition(images_dir: Path | str, name: str) -> str:
    """The Apptainer definition of image ``name``."""
    images_dir = Path(images_dir)
    spec = load_spec(images_dir, name)
    template = _templates.from_string((images_dir / "apptainer.def.j2").read_text())
    overlays = overlay_files(images_dir, spec)
    return template.render(
        spec=spec,
        installs=[(path, overlay_target(path, spec.venv)) for path in overlays],
        post_install=post_install_scripts(images_dir, spec),
    )


def overlay_target(path: str, venv: str) -> str:
    """Where overlay file ``path`` (relative to ``images/``) goes, as a shell word."""
    relative = path.split(f"/{OVERLAY}/", 1)[1]
    if relative.endswith(".pth") and "/" not in relative:
        return f'"$site_packages"/{relative}'
    if relative.startswith("site-packages/"):
        return f'"$site_packages"/{relative.removeprefix("site-packages/")}'
    return f"{venv}/{relative}"


def definition_path(images_dir: Path | str, name: str) -> Path:
    """Where image ``name``'s definition is kept."""
    return Path(images_dir) / name / f"{name}.def"


def parse_definition(text: str) -> dict[str, object]:
    """Split an Apptainer definition into its header (``Bootstrap``, ``From``) and sections.

    Returns ``{"header": {key: value}, "sections": {"%post": [lines], ...}}``. Comment
    lines and blank lines are dropped; section lines are stripped.
    """
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("%"):
            current = sections.setdefault(line.split()[0], [])
        elif current is None:
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
        else:
            current.append(line)
    return {"header": header, "sections": sections}
