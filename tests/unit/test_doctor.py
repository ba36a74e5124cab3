"""``factorylab doctor`` against a faked cluster: each check's OK and its FAIL."""

from __future__ import annotations

import json

import pytest

from spawners.doctor import Doctor, Ran, diagnose

SINFO = {
    "nodes": [
        {"name": "n1", "partitions": ["cpu", "gpu"], "gres": "gpu:h100:4(S:0)"},
        {"name": "n2", "partitions": ["cpu", "lab"], "gres": ""},
        {"name": "n3", "partitions": ["cpu", "gpu"], "gres": "gpu:a100:2(S:0)"},
    ]
}


class FakeCluster:
    """Answers the doctor's commands like a healthy 22.05 cluster; ``answers`` overrides."""

    def __init__(self, **answers: Ran):
        self.answers = {
            "sinfo --version": Ran(0, "slurm 22.05.8\n", ""),
            "scontrol ping": Ran(0, "Slurmctld(primary) at ctl is UP\n", ""),
            "munge -n": Ran(0, "MUNGE:cred\n", ""),
            "unmunge": Ran(0, "STATUS:          Success (0)\n", ""),
            "sinfo --json": Ran(0, json.dumps(SINFO), ""),
            "scontrol show config": Ran(
                0, "DefMemPerCPU            = 1000\nSlurmdTimeout           = 30 sec\n", ""
            ),
            "scontrol -o show partition": Ran(
                0, "PartitionName=cpu\nPartitionName=gpu\nPartitionName=lab\n", ""
            ),
            "sudo -n -u": Ran(0, "", "sbatch: Job 3 to start at now"),
            "sudo -n -l": Ran(1, "", "Sorry, user factorylab is not allowed"),
            **answers,
        }
        self.seen: list[list[str]] = []

    def __call__(self, argv: list[str], stdin: str = "") -> Ran:
        self.seen.append(argv)
        words = [a.rsplit("/", 1)[-1] for a in argv if a not in ("runuser", "-u", "--")]
        text = " ".join(argv[argv.index("sudo") :] if "sudo" in argv else words)
        for key, answer in self.answers.items():
            if text.startswith(key) or " ".join(words).startswith(key):
                return answer
        raise AssertionError(f"unexpected command {argv}")


@pytest.fixture
def healthy(monkeypatch):
    monkeypatch.setattr("spawners.doctor.os.access", lambda path, mode: True)
    monkeypatch.setattr(
        "spawners.doctor.grp.getgrnam", lambda name: type("G", (), {"gr_mem": ["demo01"]})
    )
    monkeypatch.setattr("spawners.doctor.pwd.getpwnam", lambda name: object())
    return FakeCluster()


def _lines(site, runner) -> dict[str, str]:
    lines, _ = diagnose(site, runner=runner, probe=False)
    return {line[5:].split(":")[0]: line for line in lines}


def test_a_healthy_cluster_is_all_ok(site, healthy):
    lines, status = diagnose(site, runner=healthy, probe=False)
    assert status == 0, lines
    assert all(line.startswith("OK") for line in lines)
    assert [line[5:].split(":")[0] for line in lines] == [
        "slurm commands", "slurm version", "slurmctld", "munge", "partition cpu",
        "partition gpu", "partition lab", "memory defaults", "node failures", "sudo rules",
        "sudo refusal",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "name", "fix"),
    [
        ({"sinfo --version": Ran(0, "slurm 21.08.8\n", "")}, "slurm version", "upgrade Slurm"),
        ({"unmunge": Ran(1, "", "unmunge: Error: Invalid credential")}, "munge", "munge.key"),
        (
            {"scontrol show config": Ran(0, "DefMemPerNode = UNLIMITED\n", "")},
            "memory defaults",
            "set DefMemPerCPU in slurm.conf",
        ),
        ({"sudo -n -u": Ran(1, "", "sudo: a password is required")}, "sudo rules", "sudoers"),
        ({"sudo -n -l": Ran(0, "/usr/bin/sbatch\n", "")}, "sudo refusal", "allow only %"),
    ],
)
def test_each_broken_part_is_a_fail_with_its_fix(site, healthy, answers, name, fix):
    healthy.answers.update(answers)
    lines, status = diagnose(site, runner=healthy, probe=False)
    line = _lines(site, healthy)[name]
    assert status == 1 and line.startswith("FAIL") and fix in line, lines


@pytest.mark.parametrize(
    ("limit", "timeout", "ok", "words"),
    [
        (30, 30, True, "silent for 30 s on a node Slurm no longer hears from"),
        (0, 30, True, "reported at Slurm's verdict; set slurm.node_silence_limit to 30"),
        (30, 300, False, "shorter than SlurmdTimeout (300 s)"),
    ],
)
def test_the_hub_never_ends_a_session_before_slurm_would(site, healthy, limit, timeout, ok, words):
    slurm = site.slurm.model_copy(update={"node_silence_limit": limit})
    site = site.model_copy(update={"slurm": slurm})
    config = f"DefMemPerCPU = 1024\nSlurmdTimeout           = {timeout} sec\n"
    healthy.answers["scontrol show config"] = Ran(0, config, "")
    line = _lines(site, healthy)["node failures"]
    assert line.startswith("OK" if ok else "FAIL") and words in line, line


def test_a_partition_or_gpu_type_slurm_lacks_is_named(site, healthy):
    sinfo = {"nodes": [{"name": "n1", "partitions": ["cpu"], "gres": "gpu:a100:2"}]}
    healthy.answers["sinfo --json"] = Ran(0, json.dumps(sinfo), "")
    gpu = _lines(site, healthy)["partition gpu"]
    assert gpu.startswith("FAIL") and "Slurm has no partition 'gpu' (it has: cpu)" in gpu
    sinfo["nodes"].append({"name": "n2", "partitions": ["gpu"], "gres": "gpu:a100:2"})
    healthy.answers["sinfo --json"] = Ran(0, json.dumps(sinfo), "")
    gpu = _lines(site, healthy)["partition gpu"]
    assert gpu.startswith("FAIL") and "no node has GPU type h100 (Slurm's: a100)" in gpu


def test_a_silent_controller_stops_the_checks_that_need_it(site, healthy):
    healthy.answers["scontrol ping"] = Ran(1, "Slurmctld(primary) at ctl is DOWN\n", "")
    lines, status = diagnose(site, runner=healthy, probe=False)
    assert status == 1 and len(lines) == 4
    assert lines[2].startswith("FAIL slurmctld") and "start slurmctld" in lines[2]
    assert not any("sinfo" in " ".join(argv) and "--json" in argv for argv in healthy.seen)


def test_missing_commands_name_the_directory(site, healthy, monkeypatch):
    monkeypatch.setattr("spawners.doctor.os.access", lambda path, mode: "sbatch" not in path)
    check = Doctor(site, runner=healthy).commands()
    assert not check.ok and check.detail.startswith("sbatch missing in /usr/bin")
