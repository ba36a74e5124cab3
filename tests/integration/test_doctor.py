"""``factorylab doctor`` on the real cluster: green when healthy, a FAIL line and a
non-zero exit when the site file names what Slurm lacks."""

import subprocess

import yaml

DOCTOR = ["/opt/factorylab/hub/bin/factorylab", "doctor"]
SITE = "/etc/factorylab/site.yaml"


def _doctor(site: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DOCTOR, site], capture_output=True, text=True, timeout=120)


def test_doctor_is_green_on_the_healthy_cluster():
    done = _doctor(SITE)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines and all(line.startswith("OK") for line in lines), lines
    names = {line[5:].split(":")[0] for line in lines}
    assert {"slurmctld", "munge", "partition gpu", "sudo rules", "sudo refusal"} <= names


def test_a_partition_slurm_lacks_is_a_fail_with_its_fix(tmp_path):
    with open(SITE) as file:
        site = yaml.safe_load(file)
    site["partitions"]["bigmem"] = {"kind": "cpu"}
    broken = tmp_path / "site.yaml"
    broken.write_text(yaml.safe_dump(site))
    done = _doctor(str(broken))
    assert done.returncode == 1, done.stdout + done.stderr
    fail = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert fail == [
        "FAIL partition bigmem: Slurm has no partition 'bigmem' (it has: cpu, gpu); add it "
        "to slurm.conf or remove it from the site file's partitions"
    ]
