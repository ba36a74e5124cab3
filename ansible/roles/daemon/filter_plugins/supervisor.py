"""Jinja filters of the `daemon` role: values written into a supervisord program section.

supervisord expands ``%(name)s`` in ``command`` and ``environment`` (so a literal ``%``
is ``%%``), splits ``command`` like a shell (shlex), and reads ``environment`` as
``KEY="value",...``. A root-only environment file is parsed here, strictly: a line that
is not KEY=VALUE (plain characters only) fails the deploy, it is never passed on.
"""

from __future__ import annotations

import re
import shlex

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # the unit tests render the templates without Ansible

    class AnsibleFilterError(ValueError):
        pass


ENV_LINE = re.compile(r"([A-Z_][A-Z0-9_]*)=([A-Za-z0-9_./:@+-]*)")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
ENV_VALUE = re.compile(r"[A-Za-z0-9_./:@+-]*")


def env_file_vars(text: str, path: str = "the environment file") -> dict[str, str]:
    """KEY=VALUE lines of an environment file (blank lines and # comments skipped).

    Anything else is refused, naming only the line number: the file holds secrets."""
    found: dict[str, str] = {}
    for number, line in enumerate(str(text).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ENV_LINE.fullmatch(line)
        if not match:
            raise AnsibleFilterError(f"{path}, line {number}: not KEY=VALUE with plain characters")
        found[match.group(1)] = match.group(2)
    return found


def supervisor_environment(env: dict) -> str:
    """``environment=`` of a program: KEY="value" pairs, checked again on the way out."""
    pairs = []
    for key, value in env.items():
        key, value = str(key), str(value)
        if not ENV_NAME.fullmatch(key) or not ENV_VALUE.fullmatch(value):
            raise AnsibleFilterError(f"environment variable {key[:40]!r}: not plain characters")
        pairs.append(f'{key}="{value}"')
    return ",".join(pairs)


def supervisor_command(argv: list) -> str:
    """``command=`` of a program: its arguments shell-quoted, ``%`` doubled.

    ``;`` and ``#`` could start a comment in supervisord's INI parser, and a line break
    would end the value: such arguments are refused."""
    if isinstance(argv, str) or not argv:
        raise AnsibleFilterError("daemon_foreground_command must be a non-empty list")
    words = []
    for arg in argv:
        arg = str(arg)
        if re.search(r"[\r\n;#]", arg):
            raise AnsibleFilterError(f"command argument {arg[:40]!r}: ';', '#' or a line break")
        words.append(shlex.quote(arg).replace("%", "%%"))
    return " ".join(words)


class FilterModule:
    def filters(self):
        return {
            "env_file_vars": env_file_vars,
            "supervisor_environment": supervisor_environment,
            "supervisor_command": supervisor_command,
        }
