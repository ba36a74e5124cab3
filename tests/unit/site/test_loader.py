import copy
import subprocess
import sys

import pytest
import yaml

from spawners.cli import main
from spawners.session.site_checks import SITE_CHECKS
from spawners.site.loader import SiteFileError, load_site, parse_site

from ..conftest import REPO

EXAMPLE = REPO / "hub_config" / "site.example.yaml"
LOCAL = REPO / "hub_config" / "site.local.yaml"


def test_shipped_site_files_are_valid():
    local = load_site(LOCAL)
    assert set(local.partitions) == {"cpu", "gpu", "lab"}
    assert local.partitions["gpu"].max_gpus == 4
    assert local.demo.usernames()[0] == "demo01" and local.demo.usernames()[-1] == "demo40"
    load_site(EXAMPLE)


def _broken(mutate):
    data = yaml.safe_load(LOCAL.read_text())
    data = copy.deepcopy(data)
    mutate(data)
    return data


@pytest.mark.parametrize(
    ("mutate", "key", "words"),
    [
        (lambda d: d["partitions"]["gpu"].update(max_gpus=0), "partitions.gpu", "max_gpus"),
        (
            lambda d: d["partitions"]["cpu"].update(max_gpus=2),
            "partitions.cpu",
            "cannot offer GPUs",
        ),
        (
            lambda d: d["partitions"]["cpu"].update(max_memory="lots"),
            "partitions.cpu.max_memory",
            "memory size",
        ),
        (
            lambda d: d["partitions"]["cpu"].update(default_walltime="09:00:00"),
            "partitions.cpu",
            "default_walltime",
        ),
        (
            lambda d: d.update(defaults={"partition": "nope", "image": "base"}),
            "defaults.partition",
            "nope",
        ),
        (lambda d: d["images"]["base"].update(venv="envs/base"), "images.base", "absolute"),
        (
            lambda d: d["slurm"].update(poll_intervall=3),
            "slurm.poll_intervall",
            "remove it or check",
        ),
        (lambda d: d["demo"].update(password="short"), "demo", "8 characters"),
        (lambda d: d.pop("partitions"), "partitions", "add it"),
        (
            lambda d: d["partitions"].update({"bad name\n": {"kind": "cpu"}}),
            "partitions",
            "pattern",
        ),
        (
            lambda d: d["profiles"]["gpu-2h"].update(gpus=8),
            "profiles.gpu-2h.gpus",
            "outside the allowed range 0-4",
        ),
        (
            lambda d: d["profiles"]["gpu-2h"].update(partition="debug"),
            "profiles.gpu-2h.partition",
            "not offered",
        ),
        (
            lambda d: d["profiles"]["cpu-notebook"].update(walltime="99:00:00"),
            "profiles.cpu-notebook.walltime",
            "at most 08:00:00",
        ),
        (
            lambda d: d["profiles"]["cpu-notebook"].update(gpus=1),
            "profiles.cpu-notebook.gpus",
            "has no GPUs",
        ),
        (
            lambda d: d["profiles"]["cpu-notebook"].pop("display_name"),
            "profiles.cpu-notebook.display_name",
            "add it",
        ),
        (
            lambda d: d["group_limits"]["factorylab-course"].update(partitions=["gpuu"]),
            "group_limits.factorylab-course.partitions",
            "gpuu",
        ),
        (
            lambda d: d["group_limits"]["factorylab-course"].update(max_walltime="soon"),
            "group_limits.factorylab-course.max_walltime",
            "walltime",
        ),
        (lambda d: d["accounts"].update(source="ldap"), "accounts.source", "auto"),
        (
            lambda d: d["accounts"]["by_group"].update({"course": ["x\n#SBATCH --qos=hi"]}),
            "accounts.by_group.course",
            "pattern",
        ),
        (lambda d: d["partitions"]["gpu"].update(gpu_request="gpu"), "gpu_request", "gres"),
        (
            lambda d: d["images"]["base"].update(apptainer="/images/base.tar"),
            "images.base",
            ".sif",
        ),
        (lambda d: d["slurm"].update(availability_interval=0), "availability_interval", "0"),
        (
            lambda d: d["hub"].update(public_url="https://hub.example.org"),
            "demo.enabled",
            "demo.public: 'anyone who can reach this hub may log in as a demo user'",
        ),
        (
            lambda d: (
                d["hub"].update(public_url="http://10.1.2.3:8000"),
                d["demo"].update(public="yes"),
            ),
            "demo.enabled",
            "set demo.enabled: false",
        ),
        (
            lambda d: d["slurm"].update(job_log_dir="/var/log/factorylab/jobs"),
            "slurm",
            "job_log_dir is no longer used",
        ),
    ],
)
def test_invalid_site_names_key_and_fix(mutate, key, words):
    with pytest.raises(SiteFileError) as info:
        parse_site(_broken(mutate), "site.yaml", SITE_CHECKS)
    message = str(info.value)
    assert message.startswith("site.yaml: invalid site file")
    assert key in message and words in message, message


def test_demo_users_on_a_public_url_need_the_admins_words():
    data = yaml.safe_load(LOCAL.read_text())
    data["hub"]["public_url"] = "https://hub.example.org"
    data["demo"]["public"] = "anyone who can reach this hub may log in as a demo user"
    assert parse_site(data, "site.yaml").demo.enabled


def test_unreadable_and_non_yaml_files(tmp_path):
    with pytest.raises(SiteFileError, match="cannot read"):
        load_site(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("partitions: [\n")
    with pytest.raises(SiteFileError, match="line 2"):
        load_site(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(SiteFileError, match="mapping"):
        load_site(scalar)


def test_check_site_command(tmp_path, capsys):
    assert main(["check-site", str(LOCAL)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "site.yaml"
    bad.write_text(yaml.safe_dump(_broken(lambda d: d["partitions"]["gpu"].update(max_gpus=-1))))
    assert main(["check-site", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "partitions.gpu.max_gpus" in err


def test_check_site_console_script_exit_status(tmp_path):
    bad = tmp_path / "site.yaml"
    bad.write_text("hub: {}\n")
    result = subprocess.run(
        [sys.executable, "-m", "spawners.cli", "check-site", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "partitions" in result.stderr and "Traceback" not in result.stderr
