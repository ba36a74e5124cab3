import json
import re
import subprocess
from pathlib import Path

import pytest

from spawners.session.job import WITHOUT_GPU_CONFIG, JobSpec, render_job_script
from spawners.session.request import parse_request


def _spec(site, options=None, **overrides):
    values = dict(
        user="demo01",
        server_name="",
        request=parse_request(options or {}, site),
        job_name="factorylab",
        workdir="/home/demo01",
        home="/home/demo01",
        venv="/opt/factorylab/envs/base",
        server_args=["--debug"],
        environment={"JUPYTERHUB_API_TOKEN": "tok", "JUPYTERHUB_USER": "demo01"},
    )
    values.update(overrides)
    return JobSpec(**values)


def _sbatch_options(script):
    return [line.split(None, 1)[1] for line in script.splitlines() if line.startswith("#SBATCH")]


def test_cpu_script(site):
    options = _sbatch_options(render_job_script(_spec(site)))
    assert "--partition=cpu" in options and "--mem=1G" in options and "--time=02:00:00" in options
    assert "--export=NONE" in options
    assert not any(o.startswith("--gres") for o in options)


def test_gpu_script_requests_gres(site):
    options = _sbatch_options(render_job_script(_spec(site, {"partition": "gpu", "gpus": "1"})))
    assert "--gres=gpu:1" in options and "--partition=gpu" in options


VENV = "/opt/factorylab/envs/base"


def test_only_sessions_with_gpus_load_the_gpu_dashboards(site):
    cpu = render_job_script(_spec(site))
    gpu = render_job_script(_spec(site, {"partition": "gpu", "gpus": "1"}))
    assert "export JUPYTER_CONFIG_PATH=/opt/factorylab/envs/base/etc/factorylab/without-gpu" in cpu
    assert "JUPYTER_CONFIG_PATH" not in gpu
    # a path the site gives sessions stays, after FactoryLab's
    site_path = _spec(site, environment={"JUPYTER_CONFIG_PATH": "/site/jupyter"})
    assert f"JUPYTER_CONFIG_PATH={VENV}/{WITHOUT_GPU_CONFIG}:/site/jupyter" in render_job_script(
        site_path
    )
    # in jupyter_server_config.d, which merges by extension: no other setting is replaced
    overlay = Path(__file__).parents[3] / "images/base/overlay" / WITHOUT_GPU_CONFIG
    server = json.loads(
        (overlay / "jupyter_server_config.d/factorylab-without-gpu.json").read_text()
    )
    assert server == {"ServerApp": {"jpserver_extensions": {"jupyterlab_nvdashboard": False}}}
    assert {p.name for p in overlay.iterdir()} == {"labconfig", "jupyter_server_config.d"}
    lab = json.loads((overlay / "labconfig/page_config.json").read_text())
    assert lab["disabledExtensions"] == {"jupyterlab-nvdashboard": True}


def test_environment_values_cannot_inject(site, tmp_path):
    evil = "x $(touch " + str(tmp_path / "pwned") + ")`id`'\"; #SBATCH --account=evil"
    script = render_job_script(_spec(site, environment={"JUPYTERHUB_API_TOKEN": evil}))
    assert not any("evil" in o for o in _sbatch_options(script))
    exports = "\n".join(line for line in script.splitlines() if line.startswith("export "))
    result = subprocess.run(
        ["bash", "-c", exports + '\nprintf %s "$JUPYTERHUB_API_TOKEN"'],
        capture_output=True,
        text=True,
    )
    assert result.stdout == evil
    assert not (tmp_path / "pwned").exists()


def test_script_is_valid_bash(site):
    script = render_job_script(_spec(site, {"partition": "gpu"}))
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"user": "root;id"}, "user name"),
        ({"server_name": "a\n#SBATCH"}, "server names"),
        ({"home": "/tmp/x\n#SBATCH --account=y"}, "home"),
        ({"workdir": "relative/dir"}, "working directory"),
        ({"environment": {"BAD NAME": "x"}}, "variable name"),
        ({"environment": {"TOKEN": "x\n#SBATCH --account=evil"}}, "control characters"),
        ({"job_name": "fl job"}, "job name"),
    ],
)
def test_untrusted_spec_values_are_refused(site, override, words):
    with pytest.raises(ValueError, match=words):
        render_job_script(_spec(site, **override))


def test_launcher_is_embedded_verbatim(site):
    script = render_job_script(_spec(site))
    assert re.search(r"<<'FACTORYLAB_LAUNCHER'\n", script)
    assert "def start_server" in script and script.rstrip().endswith("FACTORYLAB_LAUNCHER")


def test_account_and_reservation_lines_come_from_the_checked_request(site):
    from spawners.session.entitlements import Entitlements, partition_limits

    allowed = Entitlements(
        "demo01", partitions=partition_limits(site, ()), accounts=("proj",), reservations=("am",)
    )
    request = parse_request({"account": "proj", "reservation": "am"}, site, allowed)
    options = _sbatch_options(render_job_script(_spec(site, request=request)))
    assert "--account=proj" in options and "--reservation=am" in options


def test_apptainer_images_run_with_nv_on_gpus_and_the_site_binds(site):
    gpu = parse_request({"partition": "gpu", "gpus": "1"}, site)
    script = render_job_script(
        _spec(site, request=gpu, apptainer="/images/pytorch.sif", binds=["/scratch", "/data:/d"])
    )
    launch = next(line for line in script.splitlines() if line.startswith("exec apptainer"))
    assert launch.startswith(
        "exec apptainer exec --nv --bind /scratch --bind /data:/d /images/pytorch.sif "
        "/opt/factorylab/envs/base/bin/python -I - "
        "/opt/factorylab/envs/base/bin/jupyterhub-singleuser"
    )
    cpu = render_job_script(_spec(site, apptainer="/images/base.sif"))
    assert "exec apptainer exec /images/base.sif " in cpu and "--nv" not in cpu
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    with pytest.raises(ValueError, match="Apptainer image"):
        render_job_script(_spec(site, apptainer="/images/x.sif; reboot"))


def test_dask_config_travels_to_the_launcher(site):
    config = {"jobqueue": {"slurm": {"queue": "cpu", "name": "it's"}}}
    script = render_job_script(_spec(site, dask_config=config))
    assert "export DASK_CONFIG=/home/demo01/.factorylab/servers/default/dask" in script
    assert "export FACTORYLAB_WALLTIME_SECONDS=7200" in script
    assert "export FACTORYLAB_DASK_DEADLINE_MARGIN=60" in script
    exported = subprocess.run(
        [
            "bash",
            "-c",
            script.split("\n# The job writes its own log")[0]
            + '\nprintf %s "$FACTORYLAB_DASK_CONFIG"',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(exported) == config
    named = render_job_script(_spec(site, server_name="gpu-run", dask_config=config))
    assert "/home/demo01/.factorylab/servers/gpu-run/dask" in named
    assert "export DASK_CONFIG" not in render_job_script(_spec(site))


def test_starter_notebooks_go_to_the_home_folder(site):
    script = render_job_script(_spec(site, notebooks=("/opt/factorylab/notebooks", "starters")))
    assert "export FACTORYLAB_NOTEBOOKS_SOURCE=/opt/factorylab/notebooks" in script
    assert "export FACTORYLAB_NOTEBOOKS_TARGET=/home/demo01/starters" in script
    with pytest.raises(ValueError, match="plain name"):
        render_job_script(_spec(site, notebooks=("/opt/factorylab/notebooks", "../../etc")))
    with pytest.raises(ValueError, match="notebook source"):
        render_job_script(_spec(site, notebooks=("relative/path", "starters")))


def test_job_writes_its_own_private_log(site):
    """No shared log directory: Slurm's output goes nowhere, the job logs into its home."""
    script = render_job_script(_spec(site, server_name="gpu"))
    assert "--output=/dev/null" in _sbatch_options(script)
    assert "log_dir=/home/demo01/.factorylab/servers/gpu/logs" in script
    assert "umask 0077" in script and "umask 0022" not in script
    body = script.split("log_dir=", 1)[1]
    assert 'mkdir -p -m 0700 "$log_dir"' in body and "! -L $log_dir" in body
