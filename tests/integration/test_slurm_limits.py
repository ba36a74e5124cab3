"""Issue 14, 10: Slurm itself enforces the site's limits, not only the hub's form.

demo21 (group factorylab-course: one GPU, one hour) used to bypass the hub with a plain
``sbatch -p gpu --gres=gpu:4 -t INFINITE``. Partition MaxTime, partition QOS and the
group's QOS (slurmdbd and MariaDB on the demo cluster) refuse such jobs at submission.
"""

from __future__ import annotations

import subprocess

import pytest

from ..support.hub import squeue_active


def _sbatch(user: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "runuser",
            "-u",
            user,
            "--",
            "sbatch",
            "--parsable",
            "--output=/dev/null",
            *options,
            "--wrap",
            "sleep 60",
        ],
        capture_output=True,
        text=True,
        cwd="/",
    )


@pytest.mark.parametrize(
    ("user", "options", "reason"),
    [
        ("demo21", ["-p", "gpu", "--gres=gpu:4", "-t", "INFINITE"], "time limit is invalid"),
        ("demo21", ["-p", "gpu", "--gres=gpu:4", "-t", "30", "--mem=1G"], "QOSMaxGRESPerJob"),
        ("demo21", ["-p", "gpu", "--gres=gpu:1", "-t", "02:00:00", "--mem=1G"], "QOSMaxWall"),
        ("demo21", ["-p", "gpu", "--gres=gpu:1", "-t", "30", "--qos=normal"], "Invalid qos"),
        ("demo21", ["-p", "cpu", "-c", "6", "-t", "30", "--mem=1G"], "QOSMaxCpuPerJob"),
        ("demo01", ["-p", "cpu", "-t", "09:00:00", "--mem=1G"], "time limit is invalid"),
        ("demo01", ["-p", "cpu", "-c", "12", "-t", "30", "--mem=1G"], "QOSMaxCpuPerJob"),
        ("demo01", ["-p", "gpu", "--gres=gpu:1", "-t", "30", "--mem=40G"], "QOSMaxMemoryPerJob"),
        ("demo01", ["-A", "training", "-p", "cpu", "-t", "30", "--mem=1G"], "Invalid account"),
    ],
)
def test_slurm_refuses_jobs_beyond_the_site_limits(user, options, reason):
    result = _sbatch(user, *options)
    assert result.returncode != 0, f"{user} submitted {options}: job {result.stdout.strip()}"
    assert reason in result.stderr, result.stderr


def test_jobs_within_the_limits_are_accepted():
    for user, options in (
        ("demo21", ["-p", "gpu", "--gres=gpu:1", "-t", "30", "--mem=1G", "-A", "training"]),
        ("demo01", ["-p", "cpu", "-c", "2", "-t", "30", "--mem=1G"]),
    ):
        result = _sbatch(user, *options)
        assert result.returncode == 0, result.stderr
        subprocess.run(["scancel", result.stdout.strip()], check=True)
    assert not squeue_active(["-u", "demo01,demo21", "-n", "wrap"])


def test_accounts_come_from_slurms_associations(hub):
    """The hub's `accounts.source: slurm` asks sacctmgr (no fake), as the hub user does."""
    shown = subprocess.run(
        [
            "runuser",
            "-u",
            "factorylab",
            "--",
            "sacctmgr",
            "--noheader",
            "--parsable2",
            "show",
            "associations",
            "where",
            "users=demo21",
            "format=Account,QOS",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(shown) == ["factorylab-demo|factorylab-course", "training|factorylab-course"]
