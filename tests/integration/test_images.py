"""The images' venv target, as `make images` built it, and a session in each image."""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from spawners.site.images import load_spec
from spawners.site.loader import load_site

from ..support.hub import lab_page_config, proxied, run_in_kernel

REPO = Path(__file__).resolve().parents[2]
SITE = load_site(REPO / "hub_config" / "site.local.yaml")
IMAGES = list(SITE.images)
USERS = dict(zip(IMAGES, ["demo05", "demo06", "demo07", "demo08", "demo09"], strict=True))


@pytest.mark.parametrize("name", IMAGES)
def test_venv_holds_exactly_the_pins(name):
    spec = load_spec(REPO / "images", name)
    venv = SITE.images[name].venv
    frozen = subprocess.run(
        [f"{venv}/bin/python", "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {}
    for line in frozen.splitlines():
        if "==" in line:
            package, version = line.split("==", 1)
            installed[package.lower().replace("_", "-")] = version.split("+")[0]
    for package, version in spec.pins.items():
        assert installed.get(package.replace("_", "-")) == version, package


@pytest.mark.parametrize("name", IMAGES)
def test_language_servers_are_found_once_when_the_image_is_built(name):
    """images/base/post-install.sh wrote what jupyter-lsp found; no server start scans."""
    venv = Path(SITE.images[name].venv)
    config = venv / "etc/jupyter/jupyter_server_config.d/factorylab-language-servers.json"
    settings = json.loads(config.read_text())["LanguageServerManager"]
    assert settings["autodetect"] is False and isinstance(settings["language_servers"], dict)


def test_a_session_in_each_image_imports_its_packages(hub, session):
    with ThreadPoolExecutor(len(IMAGES)) as pool:
        list(pool.map(lambda name: session(USERS[name], {"image": name}), IMAGES))
    for name in IMAGES:
        user, spec = USERS[name], load_spec(REPO / "images", name)
        token = hub.user_token(user)
        code = f"import sys, {', '.join(spec.imports)}\nprint(sys.prefix)"
        assert run_in_kernel(hub, user, token, code, timeout=180).strip() == spec.venv
        # the image's server extensions answer through the hub
        assert proxied(hub, user, "api/metrics/v1", token).status_code == 200
        assert proxied(hub, user, "dask/clusters", token).status_code == 200
        # no GPU, so no GPU dashboards: nvdashboard is off on the server and in the Lab
        assert proxied(hub, user, "nvdashboard/accelerators/check", token).status_code == 404
        assert "jupyterlab-nvdashboard" in lab_page_config(hub, user, token)["disabledExtensions"]
