"""The session's JupyterLab extension (images/base/labextension): sources and build inputs.

Offline and fast: package.json, tsconfig.json and the lock file agree with each other,
with the JupyterLab pinned in images/base/requirements.txt, with the server extension
(factorylab_session) and with the browser tests; the deploy and the Apptainer images
build it from the same files. A local build (dist/, lib/), where there is one, must have
been built from these sources.
"""

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
EXT = IMAGES / "base" / "labextension"
SOURCE = EXT / "src" / "index.ts"


def _sources() -> str:
    """Every TypeScript source of the extension, joined (index.ts imports the others)."""
    return "".join(path.read_text() for path in sorted((EXT / "src").glob("*.ts")))


SERVER_EXTENSION = IMAGES / "base" / "overlay" / "site-packages" / "factorylab_session"
NAME = "factorylab-session"
# what the deploy (ansible role envs) and the Apptainer images copy and build
BUILD_INPUTS = ["package.json", "package-lock.json", "tsconfig.json", "build.sh", "src"]
# JupyterLab packages released in lockstep with JupyterLab itself (same version)
LOCKSTEP = ("@jupyterlab/application", "@jupyterlab/statusbar")


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _version(text: str) -> tuple[int, int, int]:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    assert match, text
    return tuple(int(part) for part in match.groups())


def _satisfies(version: str, spec: str) -> bool:
    """npm ``^X.Y.Z``/``~X.Y.Z``/``X.Y.Z`` ranges (prerelease tags ignored)."""
    have, low = _version(version), _version(spec.lstrip("^~="))
    if have < low:
        return False
    if spec.startswith("^"):
        first = next((i for i, part in enumerate(low) if part), 2)
        return have[: first + 1] == low[: first + 1]
    if spec.startswith("~"):
        return have[:2] == low[:2]
    return have == low


def _pinned_jupyterlab() -> str:
    text = (IMAGES / "base" / "requirements.txt").read_text()
    match = re.search(r"^jupyterlab==(\S+)", text, re.MULTILINE)
    assert match, "images/base/requirements.txt pins no jupyterlab"
    return match.group(1)


def _imports() -> set[str]:
    found = re.findall(r"^import .* from '([^']+)';", _sources(), re.MULTILINE)
    return {name for name in found if not name.startswith("./")}


def _literals(text: str) -> set[str]:
    """String literals of the TypeScript source worth finding in a build (not imports)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    text = re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE)
    found = re.findall(r"'((?:[^'\\\n]|\\.)*)'|\"((?:[^\"\\\n]|\\.)*)\"", text)
    strings = {single or double for single, double in found}
    return {s for s in strings if len(s) >= 6 and not s.startswith(("@", "./")) and "\\" not in s}


def test_package_is_the_session_extension():
    package = _json(EXT / "package.json")
    assert package["name"] == NAME
    assert package["license"] == "BSD-3-Clause"
    assert package["private"] is True  # never published
    assert package["jupyterlab"] == {"extension": True, "outputDir": "dist"}
    # the server extension names this labextension as its front end
    assert f"labextension ``{NAME}``" in (SERVER_EXTENSION / "__init__.py").read_text()


def test_tsconfig_compiles_src_into_the_main_module():
    package, tsconfig = _json(EXT / "package.json"), _json(EXT / "tsconfig.json")
    options = tsconfig["compilerOptions"]
    main = Path(package["main"])
    assert options["rootDir"] == "src" and tsconfig["include"] == ["src/*"]
    assert main.parent == Path(options["outDir"]) and main.suffix == ".js"
    assert (EXT / "src" / main.with_suffix(".ts").name).is_file()
    assert options["strict"] is True


def test_dependencies_are_what_the_source_imports():
    package = _json(EXT / "package.json")
    assert _imports() == set(package["dependencies"])
    assert set(package["devDependencies"]) == {"@jupyterlab/builder", "typescript"}


def test_jupyterlab_ranges_fit_the_pinned_jupyterlab():
    lab = _pinned_jupyterlab()
    package, lock = _json(EXT / "package.json"), _json(EXT / "package-lock.json")
    dependencies = package["dependencies"]
    for name in LOCKSTEP:
        assert dependencies[name].startswith("^"), name
        assert _satisfies(lab, dependencies[name]), f"{name} {dependencies[name]} vs {lab}"
        locked = lock["packages"][f"node_modules/{name}"]["version"]
        assert _version(locked)[:2] == _version(lab)[:2], f"{name} locked at {locked}"
    # the other shared packages: what JupyterLab's application package of that release
    # requires is within our range (it ships exactly those)
    shipped = lock["packages"]["node_modules/@jupyterlab/application"]["dependencies"]
    for name, spec in dependencies.items():
        if name in shipped:
            assert _satisfies(shipped[name].lstrip("^~"), spec), f"{name}: {spec} vs {shipped}"
    # the builder's major is JupyterLab's
    builder = lock["packages"]["node_modules/@jupyterlab/builder"]["version"]
    assert _version(builder)[0] == _version(lab)[0]


def test_ranges_fit_the_installed_jupyterlab_if_any():
    lab = _pinned_jupyterlab()
    cores = sorted(Path("/opt/factorylab/envs/base").glob("lib/python3*/site-packages/jupyterlab"))
    core = cores[0] / "staging" / "package.json" if cores else None
    if core is None or not core.exists():
        pytest.skip("no base environment on this machine")
    meta = _json(core)
    if meta["version"] != lab:
        pytest.skip(f"the base environment has JupyterLab {meta['version']}, not {lab}")
    yarn_lock = (core.parent / "yarn.lock").read_text()
    for name, spec in _json(EXT / "package.json")["dependencies"].items():
        # the version JupyterLab ships and shares: its yarn.lock's resolution
        entry = rf'^"(?:[^"\n]*, )?{re.escape(name)}@npm:[^"\n]*":\n\s+version: (\S+)'
        shipped = re.search(entry, yarn_lock, re.MULTILINE)
        assert shipped, f"{name} is not in JupyterLab {lab}"
        assert _satisfies(shipped.group(1), spec), f"{name}: {spec} vs {shipped.group(1)}"
        assert name in meta["jupyterlab"]["singletonPackages"], name


def test_lock_file_matches_package_json_and_names_no_registry():
    package, lock = _json(EXT / "package.json"), _json(EXT / "package-lock.json")
    assert lock["name"] == NAME and lock["lockfileVersion"] == 3
    root = lock["packages"][""]
    assert root["dependencies"] == package["dependencies"]
    assert root["devDependencies"] == package["devDependencies"]

    def walk(node, key=""):
        if isinstance(node, dict):
            for child_key, child in node.items():
                assert child_key != "resolved", "strip the registry URLs from package-lock.json"
                if child_key != "funding":
                    yield from walk(child, child_key)
        elif isinstance(node, list):
            for child in node:
                yield from walk(child, key)
        elif isinstance(node, str):
            yield key, node

    urls = [(key, value) for key, value in walk(lock) if "://" in value]
    assert urls == []
    for path, entry in lock["packages"].items():
        if path:
            assert entry.get("integrity", "").startswith("sha512-"), path


def test_plugin_ids_and_endpoints_match_the_server_extension():
    source = _sources()
    assert f"const PLUGIN_ID = '{NAME}:time-left';" in source
    assert f"id: '{NAME}:kernel-jobs'," in source
    server = (SERVER_EXTENSION / "__init__.py").read_text()
    routes = set(re.findall(r'url_path_join\(base, r?"([^"]+)"\)', server))
    assert routes == {
        "factorylab/session",
        "factorylab/session/extend",
        "factorylab/kernels",
        "factorylab/kernels/([0-9a-f-]{36})/cancel",
    }
    assert "URLExt.join(settings.baseUrl, 'factorylab', path)" in source
    assert "call<ISessionFacts>('session')" in source
    assert "call<ISessionFacts>('session/extend', { method: 'POST', body: '{}' })" in source
    assert "call<{ kernels?: IKernelJob[] }>('kernels')" in source
    assert "call<object>('kernels/' + job.id + '/cancel', { method: 'POST' })" in source
    for field in ("time_left_seconds", "extend_by_seconds", "extendable_until", "message"):
        assert field in source


@pytest.mark.parametrize(
    ("in_source", "in_browser_test"),
    [
        ("node.className = 'factorylab-time-left';", ".factorylab-time-left"),
        ("'Your session ends in '", "Your session ends in"),
        ("'Session extended: '", "Session extended"),
        ("label: 'Extend'", 'name="Extend"'),
        ("'Time left: '", "textContent.includes('min')"),
    ],
)
def test_the_browser_tests_selectors_are_in_the_source(in_source, in_browser_test):
    assert in_source in SOURCE.read_text()
    browser_test = REPO / "tests" / "integration" / "test_time_left_browser.py"
    assert in_browser_test in browser_test.read_text()


def test_no_hand_written_bundle_in_the_overlay():
    assert not (IMAGES / "base" / "overlay" / "share" / "jupyter" / "labextensions" / NAME).exists()


def test_deploy_and_images_build_the_same_inputs():
    for name in BUILD_INPUTS:
        assert (EXT / name).exists(), name
    ignored = (EXT / ".gitignore").read_text().split()
    assert {"node_modules/", "lib/", "dist/"} <= set(ignored)
    tasks = (REPO / "ansible" / "roles" / "envs" / "tasks" / "labextension.yml").read_text()
    assert 'bash "$work"/build.sh' in tasks
    for name in BUILD_INPUTS:
        assert f'"$src"/{name}' in tasks, name
    for image in sorted(path.parent.name for path in IMAGES.glob("*/requirements.txt")):
        definition = (IMAGES / image / f"{image}.def").read_text()
        for name in BUILD_INPUTS:
            line = (
                f"images/base/labextension/{name} /opt/factorylab/images/base/labextension/{name}"
            )
            assert line in definition, (image, name)
        assert f"/tmp/factorylab-labextension/build.sh /opt/factorylab/envs/{image}\n" in definition
        assert f"/opt/factorylab/envs/{image}/share/jupyter/labextensions/{NAME}\n" in definition


def test_a_local_build_was_built_from_these_sources():
    built = EXT / "dist" / "package.json"
    if not built.exists():
        pytest.skip("no local build (bash images/base/labextension/build.sh VENV)")
    meta = _json(built)
    load = meta["jupyterlab"].pop("_build")
    assert meta == _json(EXT / "package.json"), "dist/ was built from another package.json"
    assert load["extension"] == "./extension"
    assert re.fullmatch(r"static/remoteEntry\.[0-9a-f]+\.js", load["load"]), load
    assert (EXT / "dist" / load["load"]).is_file()
    bundle = "".join(path.read_text() for path in (EXT / "dist" / "static").glob("*.js"))
    compiled = "".join(path.read_text() for path in (EXT / "lib").glob("*.js"))
    literals = _literals(_sources())
    assert len(literals) > 15
    for text in sorted(literals):
        assert text in compiled, f"lib/ is stale: {text!r} missing; rerun build.sh"
        assert text in bundle, f"dist/ is stale: {text!r} missing; rerun build.sh"
