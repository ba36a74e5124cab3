"""The envs role's check that a venv already holds an image's pins (ansible/roles/envs/files)."""

import importlib.util
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "ansible/roles/envs/files/requirements_met.py"
spec = importlib.util.spec_from_file_location("requirements_met", SCRIPT)
requirements_met = importlib.util.module_from_spec(spec)
spec.loader.exec_module(requirements_met)

PYTEST = metadata.version("pytest")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name / "requirements.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_installed_pins_through_an_include_are_met(tmp_path):
    _write(tmp_path, "base", f"# the base\npytest=={PYTEST}  # tests\n")
    child = _write(tmp_path, "child", "-r ../base/requirements.txt\n")
    assert requirements_met.unmet(child) == []
    run = subprocess.run([sys.executable, SCRIPT, child], capture_output=True, text=True)
    assert (run.returncode, run.stdout.strip()) == (0, "met")


def test_a_wrong_version_a_missing_package_and_an_unpinned_line_each_mean_run_pip(tmp_path):
    path = _write(
        tmp_path,
        "img",
        "pytest==0.0.1\nno-such-package-factorylab==1.0\nrequests>=2\n",
    )
    assert requirements_met.unmet(path) == [
        f"pytest: {PYTEST} installed, 0.0.1 pinned",
        "no-such-package-factorylab: not installed",
        "requests>=2: not a plain pin",
    ]
    run = subprocess.run([sys.executable, SCRIPT, path], capture_output=True, text=True)
    assert run.returncode == 1 and "not installed" in run.stdout


def test_a_local_label_satisfies_a_pin_without_one(tmp_path, monkeypatch):
    monkeypatch.setattr(requirements_met.metadata, "version", lambda name: "2.13.0+cpu")
    assert requirements_met.unmet(_write(tmp_path, "t", "torch==2.13.0\n")) == []
    assert requirements_met.unmet(_write(tmp_path, "u", "torch==2.13.0+cu128\n")) == [
        "torch: 2.13.0+cpu installed, 2.13.0+cu128 pinned"
    ]
