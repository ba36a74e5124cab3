"""``factorylab doctor`` on the real cluster: green when healthy, a FAIL line and a
non-zero exit when the site file names what Slurm lacks, when a node lacks an image
environment, or when the hub cannot reach a port on a node."""

import subprocess

import pytest
import yaml

from ..support.nodes import compute_nodes, run_on_node

DOCTOR = ["/opt/factorylab/hub/bin/factorylab", "doctor"]
SITE = "/etc/factorylab/site.yaml"


def _doctor(site: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DOCTOR, site, *options], capture_output=True, text=True, timeout=600)


def test_doctor_is_green_on_the_healthy_cluster():
    done = _doctor(SITE, "--dask")
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines and all(line.startswith("OK") for line in lines), lines
    names = {line[5:].split(":")[0] for line in lines}
    assert {"slurmctld", "munge", "partition gpu", "sudo rules", "sudo refusal"} <= names
    # a probe job on every node, and one in every partition
    checks = ("name", "home", "images", "reaches hub", "reached from hub", "clock")
    for node in compute_nodes():
        assert {f"probe cpu@{node} {check}" for check in checks} <= names, names
    assert any(name.startswith("probe gpu@") for name in names), names
    # --dask: a worker on the second node joined a scheduler on the first
    first, second = compute_nodes()[:2]
    assert f"dask {second}->{first}" in names, names


def _fails(done: subprocess.CompletedProcess) -> list[str]:
    assert done.returncode == 1, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith("FAIL")]


@pytest.fixture
def broken_node():
    """The last compute node; whatever a test changed inside it is undone afterwards."""
    node = compute_nodes()[-1]
    undo = []
    yield node, undo.append
    for argv in reversed(undo):
        run_on_node(node, argv)


def test_a_node_without_an_image_environment_is_a_fail(broken_node):
    node, undo = broken_node
    # an empty directory over the chip image's environment, in that node only
    hidden = run_on_node(node, ["mount", "-t", "tmpfs", "tmpfs", "/opt/factorylab/envs/chip"])
    assert hidden.returncode == 0, hidden.stderr
    undo(["umount", "/opt/factorylab/envs/chip"])
    fails = _fails(_doctor(SITE))
    # the cpu probe on that node, and the gpu probe if it landed there too
    names = [line.split(":")[0] for line in fails]
    assert f"FAIL probe cpu@{node} images" in names, fails
    assert all(name.endswith(f"@{node} images") for name in names), fails
    assert f"chip does not import on {node}" in fails[0] and "make images" in fails[0]


def test_a_port_the_hub_cannot_reach_is_a_fail(broken_node):
    node, undo = broken_node
    # the node's firewall drops new connections to the ports sessions (and probes) bind
    ruleset = (
        "table inet factorylab_test {\n  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        "    tcp dport 32768-60999 ct state new drop\n  }\n}\n"
    )
    closed = run_on_node(node, ["nft", "-f", "-"], input=ruleset)
    assert closed.returncode == 0, closed.stderr
    undo(["nft", "delete", "table", "inet", "factorylab_test"])
    fails = _fails(_doctor(SITE))
    names = [line.split(":")[0] for line in fails]
    assert f"FAIL probe cpu@{node} reached from hub" in names, fails
    assert all(name.endswith(f"@{node} reached from hub") for name in names), fails
    assert "let the hub host reach the nodes' ports" in fails[0], fails


def test_a_partition_slurm_lacks_is_a_fail_with_its_fix(tmp_path):
    with open(SITE) as file:
        site = yaml.safe_load(file)
    site["partitions"]["bigmem"] = {"kind": "cpu"}
    broken = tmp_path / "site.yaml"
    broken.write_text(yaml.safe_dump(site))
    fail = _fails(_doctor(str(broken)))
    assert fail == [
        "FAIL partition bigmem: Slurm has no partition 'bigmem' (it has: cpu, gpu, lab); add it "
        "to slurm.conf or remove it from the site file's partitions"
    ]
