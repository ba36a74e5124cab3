"""The per-session Dask configuration the hub hands to each session."""

import dataclasses
import json

import pytest
import yaml

from spawners.session.dask import (
    DASHBOARD_LINK,
    NODE_ADDRESS,
    SESSION_END,
    dask_tls_files,
    session_dask_config,
    worker_job_name,
)
from spawners.session.paths import session_dir
from spawners.session.request import parse_request
from spawners.site.model import Site

from ..conftest import REPO


def _site_with(**sections) -> Site:
    data = yaml.safe_load((REPO / "hub_config" / "site.local.yaml").read_text())
    for key, change in sections.items():
        for path, value in change.items():
            target = data[key]
            *parents, last = path.split(".")
            for parent in parents:
                target = target[parent]
            target[last] = value
    return Site.model_validate(data)


def _slurm(site, options=None, user="demo01", server="", home="/home/demo01"):
    request = parse_request(options or {}, site)
    return session_dask_config(site, request, user, server, home)["jobqueue"]["slurm"]


def test_defaults_come_from_the_site_file(site):
    slurm = _slurm(site)
    assert slurm["queue"] == "cpu" and slurm["cores"] == 1 and slurm["processes"] == 1
    assert slurm["memory"] == "1024MiB"
    assert slurm["walltime"] == "01:00:00"  # dask.walltime, shorter than the 2 h session
    assert "python" not in slurm  # dask-jobqueue's default: the kernel's own interpreter
    assert slurm["log-directory"] == "/home/demo01/.factorylab/dask-logs"
    assert slurm["scheduler-options"] == {
        "dashboard_address": "127.0.0.1:0",
        "host": NODE_ADDRESS,
        "protocol": "tls://",
    }
    assert slurm["interface"] is None


def test_workers_never_outlive_the_session(site):
    slurm = _slurm(site, {"walltime": "00:20:00"})
    assert slurm["walltime"] == "00:20:00"
    directives = slurm["job-extra-directives"]
    assert f"--deadline={SESSION_END}" in directives
    assert "--time-min=00:05:00" in directives
    short = _slurm(site, {"walltime": "00:02:00"})
    assert "--time-min=00:02:00" in short["job-extra-directives"]


def test_names_tag_user_and_server(site):
    slurm = _slurm(site, user="demo07", server="gpu-run")
    assert slurm["name"] == worker_job_name("demo07", "gpu-run") == "dask-demo07-gpu-run"
    assert "--comment=factorylab-dask:demo07:gpu-run" in slurm["job-extra-directives"]
    assert worker_job_name("demo07", "") == "dask-demo07-default"


def test_workers_are_charged_to_the_sessions_account(site):
    slurm = _slurm(site, {"image": "climate"})
    assert "python" not in slurm and slurm["account"] is None
    request = dataclasses.replace(parse_request({}, site), account="training")
    config = session_dask_config(site, request, "demo21", "", "/home/demo21")
    assert config["jobqueue"]["slurm"]["account"] == "training"


def test_apptainer_images_run_workers_in_the_container(site):
    apptainer_site = _site_with(
        images={"base.apptainer": "/images/base.sif", "base.binds": ["/etc/slurm", "/scratch"]},
        dask={"partition": "gpu"},
    )
    slurm = _slurm(apptainer_site)
    assert slurm["python"] == (
        "apptainer exec --nv --bind /etc/slurm --bind /scratch /images/base.sif "
        "/opt/factorylab/envs/base/bin/python"
    )
    assert "--gres=gpu:1" in slurm["job-extra-directives"]
    assert slurm["queue"] == "gpu"


def test_interface_replaces_the_node_address():
    slurm = _slurm(_site_with(dask={"interface": "ib0"}))
    assert slurm["interface"] == "ib0" and "host" not in slurm["scheduler-options"]


def test_dashboard_and_lab_sidebar(site):
    config = session_dask_config(site, parse_request({}, site), "demo01", "", "/home/demo01")
    assert config["distributed"]["dashboard"]["link"] == DASHBOARD_LINK
    assert DASHBOARD_LINK == "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"
    factory = config["labextension"]["factory"]
    assert (factory["module"], factory["class"], factory["kwargs"]) == (
        "dask_jobqueue",
        "SLURMCluster",
        {},
    )
    json.dumps(config)  # it travels as JSON


def test_dask_uses_mutual_tls_with_the_sessions_own_files(site):
    config = session_dask_config(site, parse_request({}, site), "demo03", "gpu-run", "/home/demo03")
    folder = "/home/demo03/.factorylab/servers/gpu-run/dask-tls"
    assert folder == session_dir("/home/demo03", "gpu-run") + "/dask-tls"
    files = dask_tls_files(session_dir("/home/demo03", "gpu-run"))
    assert files == {
        "ca": f"{folder}/ca.crt",
        "cert": f"{folder}/session.crt",
        "key": f"{folder}/session.key",
    }
    pair = {"cert": files["cert"], "key": files["key"]}
    # every Security() built from configuration: scheduler, workers, clients, LocalCluster
    assert config["distributed"]["comm"] == {
        "require-encryption": True,
        "tls": {"ca-file": files["ca"], "scheduler": pair, "worker": pair, "client": pair},
    }
    slurm = config["jobqueue"]["slurm"]
    # SLURMCluster() without a security argument gives its scheduler no protocol ...
    assert slurm["scheduler-options"]["protocol"] == "tls://"
    assert slurm["scheduler-options"]["dashboard_address"] == "127.0.0.1:0"
    # ... and its workers no --tls-* arguments: the configuration adds them
    assert slurm["worker-extra-args"] == [
        *("--protocol", "tls"),
        *("--tls-ca-file", files["ca"]),
        *("--tls-cert", files["cert"]),
        *("--tls-key", files["key"]),
        "--no-dashboard",
    ]
    # the Lab sidebar's cluster reads the same configuration: no arguments needed
    assert config["labextension"]["factory"]["args"] == []
    assert config["labextension"]["factory"]["kwargs"] == {}
    other = session_dask_config(site, parse_request({}, site), "demo03", "", "/home/demo03/")
    assert other["distributed"]["comm"]["tls"]["ca-file"] == (
        "/home/demo03/.factorylab/servers/default/dask-tls/ca.crt"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"partition": "bigmem"}, "dask.partition: 'bigmem' is not one of the partitions"),
        ({"cores": 64}, "dask.cores: 64 is more than partition 'cpu' allows (8)"),
        ({"memory": "64G"}, "dask.memory: 64G is more than partition 'cpu' allows (16G)"),
        ({"walltime": "12:00:00"}, "dask.walltime: 12:00:00 is more than partition 'cpu'"),
        ({"interface": "eth0; reboot"}, "dask.interface"),
        ({"log_directory": "logs/$(id)"}, "dask.log_directory"),
    ],
)
def test_invalid_dask_settings_name_the_key(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _site_with(dask=change)
