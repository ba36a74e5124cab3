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
def test_the_server_loads_the_images_settings_no_scan_no_installer(name):
    """What a user's server loads from the env: no language-server scan at each start
    (images/base/post-install.sh listed what the build found), a read-only extension
    manager (users cannot install into the shared image)."""
    venv = Path(SITE.images[name].venv)
    loaded = subprocess.run(
        [
            "sudo",
            "-u",
            "demo05",
            "env",
            "HOME=/home/demo05",
            f"{venv}/bin/jupyter-lab",
            "--show-config-json",
        ],
        cwd="/tmp",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    config = json.loads(loaded)
    assert config["LanguageServerManager"]["autodetect"] is False
    assert config["LabApp"]["extension_manager"] == "readonly"
    listed = venv / "etc/jupyter/jupyter_server_config.d/factorylab-language-servers.json"
    assert isinstance(
        json.loads(listed.read_text())["LanguageServerManager"]["language_servers"], dict
    )


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
