"""The house rules of ``spawners/``: four wings, imports that only go down, no circle,
no file over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "spawners"
#: What each wing may import from the others (and itself).
ALLOWED = {
    "site": {"site"},
    "slurm": {"site", "slurm"},
    "session": {"site", "slurm", "session"},
    "hub": {"site", "slurm", "session", "hub"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "templates" in path.parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The spawners modules ``path`` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spawners"):
            names.add(node.module)
            names.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if f"{node.module}.{alias.name}" in MODULES
            )
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("spawners"))
    return {name for name in names if name in MODULES}


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _wing(m)))
def test_wings_import_only_downwards(module):
    wing = _wing(module)
    wrong = {dep for dep in GRAPH[module] if _wing(dep) and _wing(dep) not in ALLOWED[wing]}
    assert not wrong, f"{module} ({wing}) imports {sorted(wrong)}"


def test_no_import_circle():
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            cycle = " -> ".join((*path[path.index(module) :], module))
            pytest.fail(f"import circle: {cycle}")
        if module in done:
            return
        for dep in GRAPH[module]:
            if dep != module and not module.startswith(dep + "."):  # a package's own parent
                visit(dep, (*path, module))
        done.add(module)

    for module in MODULES:
        visit(module, ())


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_file_over_400_lines(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= 400, f"{MODULES[module]} has {lines} lines; split it"


def test_the_layer_test_sees_a_wrong_import(tmp_path):
    """The rule above can fail: a site module importing the hub is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from spawners.hub.spawner import SlurmSpawner\n")
    assert _imports(bad) == {"spawners.hub.spawner"}
    assert _wing("spawners.hub.spawner") not in ALLOWED["site"]
