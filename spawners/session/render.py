"""The Jinja2 environment of every batch script a session renders (``templates/``)."""

from __future__ import annotations

import shlex
from pathlib import Path

import jinja2

#: Strict (an unknown name is an error), no HTML escaping; ``| shquote`` quotes for bash.
templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)
templates.filters["shquote"] = lambda value: shlex.quote(str(value))
