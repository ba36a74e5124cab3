"""A kernel job's batch script: its limits, its deadline, its quoting and its agent."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from spawners.session.kernel_job import (
    AGENT_PARTS,
    DEADLINE_MARGIN,
    KernelJob,
    check_directory,
    kernel_dir,
    render_kernel_script,
)
from spawners.session.request import InvalidRequest, SessionRequest

TEMPLATES = Path(__file__).resolve().parents[3] / "spawners" / "session" / "templates"
KERNEL_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
GPU = SessionRequest("gpu", "pytorch", 1, "h100", 2, 8192, 3600)


def _job(**changes) -> KernelJob:
    values = {
        "user": "demo01",
        "server_name": "",
        "kernel": "pytorch-gpu",
        "request": GPU,
        "job_name": "factorylab-kernel-demo01-default",
        "home": "/home/demo01",
        "kernel_dir": kernel_dir("/home/demo01", KERNEL_ID),
        "directory": "/home/demo01/work",
        "venv": "/opt/factorylab/envs/pytorch",
        "session_ends_at": 100_000.0,
    }
    values.update(changes)
    return KernelJob(**values)


def test_the_script_asks_for_the_kernel_and_ends_before_its_session():
    script = render_kernel_script(_job(), now=100_000.0 - 1800)
    assert "#SBATCH --job-name=factorylab-kernel-demo01-default\n" in script
    assert "#SBATCH --gres=gpu:h100:1\n" in script and "#SBATCH --mem=8G\n" in script
    # 30 minutes left in the session: the kernel's hour is cut to 29 minutes
    assert "#SBATCH --time=29\n" in script
    assert "#SBATCH --deadline=" in script and "#SBATCH --export=NONE" in script
    assert f"kernel_dir=/home/demo01/.factorylab/kernels/{KERNEL_ID}\n" in script
    assert '/opt/factorylab/envs/pytorch/bin/python -I - "$kernel_dir"' in script


def test_a_session_about_to_end_opens_no_kernel_job():
    with pytest.raises(InvalidRequest, match="ends in less than a few minutes"):
        render_kernel_script(_job(), now=100_000.0 - DEADLINE_MARGIN - 60)


def test_the_notebook_directory_is_quoted_not_trusted():
    script = render_kernel_script(_job(directory="/home/demo01/a b'$(id)"), now=0.0)
    assert "export FACTORYLAB_KERNEL_CWD='/home/demo01/a b'\"'\"'$(id)'\n" in script
    for hostile in ("relative/dir", "/home/demo01/../root", "/home/x\n#SBATCH --uid=0"):
        with pytest.raises(InvalidRequest):
            check_directory(hostile, "/home/demo01")
    assert check_directory("", "/home/demo01") == "/home/demo01"


@pytest.mark.parametrize("kernel_id", ["../../etc", "x" * 36, KERNEL_ID.upper(), ""])
def test_a_kernel_directory_is_only_ever_a_uuid_in_the_home(kernel_id):
    with pytest.raises(InvalidRequest):
        kernel_dir("/home/demo01", kernel_id)


def test_names_and_paths_that_could_break_out_are_refused():
    for changes in ({"user": "root;x"}, {"job_name": "a b"}, {"venv": "/opt/x y"}):
        with pytest.raises(ValueError):
            render_kernel_script(_job(**changes), now=0.0)


def test_the_joined_agent_names_nothing_undefined():
    folder = Path(tempfile.mkdtemp(prefix="factorylab-agent-"))
    joined = folder / "kernel_agent.py"
    joined.write_text("".join((TEMPLATES / part).read_text() for part in AGENT_PARTS))
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "check", "--isolated", "--select=F821", str(joined)],
        capture_output=True,
        text=True,
    )
    joined.unlink()
    folder.rmdir()
    assert result.returncode == 0, result.stdout
