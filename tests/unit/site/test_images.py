"""Image specs and their Apptainer target: the .def files install exactly the spec."""

import shlex

import pytest

from spawners.cli import image_defs
from spawners.site.images import (
    SpecError,
    definition_path,
    image_names,
    load_spec,
    overlay_files,
    parse_definition,
    post_install_scripts,
)

from ..conftest import REPO

IMAGES = REPO / "images"
BASE_MUST_HAVE = {
    "jupyterlab",
    "jupyterhub",
    "ipywidgets",
    "dask",
    "distributed",
    "dask-jobqueue",
    "dask-labextension",
    "jupyter-server-proxy",
    "jupyter-resource-usage",
    "jupyterlab-nvdashboard",
    "matplotlib",
    "nbgitpuller",
}


def test_the_five_images_exist():
    assert image_names(IMAGES) == ["base", "biomed", "chip", "climate", "pytorch"]


def test_base_has_what_every_session_needs():
    assert set(load_spec(IMAGES, "base").pins) >= BASE_MUST_HAVE


@pytest.mark.parametrize("name", ["pytorch", "climate", "biomed", "chip"])
def test_every_image_builds_on_base_and_pins_torch(name):
    spec = load_spec(IMAGES, name)
    assert spec.chain[0] == "base" and spec.chain[-1] == name
    assert spec.pins["torch"] == "2.13.0"
    assert "torch" in spec.imports


@pytest.mark.parametrize("name", ["base", "pytorch", "climate", "biomed", "chip"])
def test_every_pin_is_exact_and_pinned_once(name):
    seen: dict[str, str] = {}
    for image in load_spec(IMAGES, name).chain:
        own = load_spec(IMAGES, image)
        for package, version in own.pins.items():
            assert seen.get(package, version) == version, f"{package} pinned twice"
            seen[package] = version


def test_definitions_are_up_to_date(capsys):
    assert image_defs(str(IMAGES), check=True) == 0, capsys.readouterr().err


@pytest.mark.parametrize("name", ["base", "pytorch", "climate", "biomed", "chip"])
def test_definition_installs_exactly_the_spec(name, site):
    spec = load_spec(IMAGES, name)
    parsed = parse_definition(definition_path(IMAGES, name).read_text())
    header, sections = parsed["header"], parsed["sections"]
    assert header == {"Bootstrap": "docker", "From": "debian:12-slim"}
    copied = dict(line.split() for line in sections["%files"])
    # every spec file of the chain, at the same relative place, so `-r ../base/…` resolves
    for file in spec.spec_files:
        assert copied[f"images/{file}"] == f"/opt/factorylab/images/{file}"
        assert (IMAGES / file).exists()
    for file in overlay_files(IMAGES, spec):
        assert copied[f"images/{file}"] == f"/opt/factorylab/images/{file}"
    post = sections["%post"]
    for script in post_install_scripts(IMAGES, spec):
        assert copied[f"images/{script}"] == f"/opt/factorylab/images/{script}"
        assert f"VENV={spec.venv} bash /opt/factorylab/images/{script}" in post
    assert "python3 -m venv " + spec.venv in post
    installs = [shlex.split(line) for line in post if "/bin/pip install " in line]
    assert len(installs) == 1
    argv = installs[0]
    assert argv[0] == f"{spec.venv}/bin/pip" and argv[-2:] == [
        "-r",
        f"/opt/factorylab/images/{name}/requirements.txt",
    ]
    # the only other argument is the optional CUDA wheel index of the site
    assert [a for a in argv[2:-2] if a not in ("--no-cache-dir",)] == [
        "${index:+--extra-index-url",
        "$index}",
    ]
    assert sections["%runscript"] == [f'exec {spec.venv}/bin/jupyterhub-singleuser "$@"']
    test_line = sections["%test"][0]
    for module in spec.imports:
        assert module in test_line
    # the site file's venv for the image is the same path inside the container
    assert site.images[name].venv == spec.venv


def test_post_install_scripts_run_base_first_in_both_targets():
    # every image finds its language servers once (base); chip also warms its Yosys cache
    spec = load_spec(IMAGES, "chip")
    assert post_install_scripts(IMAGES, spec) == ["base/post-install.sh", "chip/post-install.sh"]
    assert post_install_scripts(IMAGES, load_spec(IMAGES, "climate")) == ["base/post-install.sh"]


def test_bad_specs_name_the_file_and_line(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "requirements.txt").write_text("dask==1.0\nnumpy>=2\n")
    with pytest.raises(SpecError, match=r"base/requirements.txt:2: 'numpy>=2' is not a pin"):
        load_spec(tmp_path, "base")
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "requirements.txt").write_text("-r ../loop/requirements.txt\n")
    with pytest.raises(SpecError, match="includes itself"):
        load_spec(tmp_path, "loop")
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_spec(tmp_path, "missing")


def test_a_stale_definition_is_reported(tmp_path, capsys):
    for name in ("base", "pytorch"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "requirements.txt").write_text(
            (IMAGES / name / "requirements.txt").read_text()
        )
    (tmp_path / "apptainer.def.j2").write_text((IMAGES / "apptainer.def.j2").read_text())
    assert image_defs(str(tmp_path), check=False) == 0
    assert image_defs(str(tmp_path), check=True) == 0
    (tmp_path / "pytorch" / "requirements.txt").write_text(
        "-r ../base/requirements.txt\ntorch==2.14.1\n"
    )
    assert image_defs(str(tmp_path), check=True) == 1
    assert "pytorch.def" in capsys.readouterr().err
