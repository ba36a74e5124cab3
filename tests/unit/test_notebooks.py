"""Notebook lint: the starter notebooks are stored clean and take their parameters."""

import ast
import json
from pathlib import Path

import pytest

from .conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").rglob("*.ipynb"))
IMAGE_OF = {
    "00-getting-started.ipynb": "base",
    "synthesis-sweep.ipynb": "chip",
    "activity-prediction.ipynb": "biomed",
    "lorenz96-subgrid.ipynb": "climate",
}


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_starter_is_there():
    assert {path.name for path in NOTEBOOKS} == set(IMAGE_OF)
    assert {path.parent.name for path in NOTEBOOKS} == {
        "notebooks",
        "chip-design",
        "biomedicine",
        "climate",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_stored_without_outputs(path):
    for cell in _load(path)["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
        assert "attachments" not in cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_one_parameters_cell_with_the_scale_knob(path):
    cells = _load(path)["cells"]
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters' (papermill)"
    tree = ast.parse("".join(tagged[0]["source"]))
    assignments = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}
    assert assignments == {"SCALE": "small"}
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for scale in ("ci-small", "small", "factory"):
        assert f'"{scale}"' in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_opens_in_its_images_kernel(path, site):
    kernel = _load(path)["metadata"]["kernelspec"]["name"]
    image = IMAGE_OF[path.name]
    assert kernel == f"factorylab-{image}" and image in site.images


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_no_cell_fetches_from_the_network(path):
    code = "".join("".join(c["source"]) for c in _load(path)["cells"] if c["cell_type"] == "code")
    for marker in ("http://", "https://", "requests.", "urlopen", "download", "hf_hub", "wget"):
        assert marker not in code, marker


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_reports_results_and_offers_a_widget(path):
    code = "".join("".join(c["source"]) for c in _load(path)["cells"] if c["cell_type"] == "code")
    assert "FACTORYLAB_RESULTS" in code and "ipywidgets" in code
    assert "SLURMCluster()" in code and "LocalCluster(" in code
