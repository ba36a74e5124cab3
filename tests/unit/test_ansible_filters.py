"""The roles' filters: what Slurm enforces is derived from the site file by its own model."""

import copy
import sys

import pytest
import yaml

from .conftest import REPO

sys.path.insert(0, str(REPO / "ansible" / "filter_plugins"))

import factorylab as filters

LOCAL = yaml.safe_load((REPO / "hub_config" / "site.local.yaml").read_text())


def test_partition_and_group_limits_of_the_demo_site():
    limits = filters.slurm_limits(LOCAL)
    assert limits["partitions"] == {"cpu": 480, "gpu": 240, "lab": 480}
    # lab shares cores, so every partition is written FORCE:N (they mix on a node)
    assert limits["oversubscribe"] == {"cpu": 1, "gpu": 1, "lab": 4}
    assert limits["qos"]["part-cpu"] == {
        "tres": "cpu=8,mem=16384M",
        "minutes": 480,
        "flags": "DenyOnLimit",
    }
    assert limits["qos"]["part-gpu"]["tres"] == "cpu=16,mem=32768M,gres/gpu=4"
    course = limits["qos"]["factorylab-course"]
    assert course == {
        "tres": "cpu=4,mem=8192M,gres/gpu=1",
        "minutes": 60,
        "flags": "DenyOnLimit,OverPartQOS",
    }
    assert limits["deny_qos"] == {"cpu": [], "gpu": [], "lab": []}


def test_a_group_limit_never_exceeds_its_partitions_and_keeps_to_its_partitions():
    site = copy.deepcopy(LOCAL)
    site["group_limits"]["factorylab-course"] = {"partitions": ["cpu"], "max_cpus": 64}
    limits = filters.slurm_limits(site)
    course = limits["qos"]["factorylab-course"]
    assert course["tres"] == "cpu=8,mem=16384M,gres/gpu=0" and course["minutes"] == 480
    course_denied = ["factorylab-course"]
    assert limits["deny_qos"] == {"cpu": [], "gpu": course_denied, "lab": course_denied}


def test_demo_associations_follow_the_site_files_accounts_and_groups():
    rows = {row["user"]: row for row in filters.demo_associations(LOCAL)}
    assert len(rows) == 40
    assert rows["demo01"] == {"user": "demo01", "accounts": ["factorylab-demo"], "qos": "normal"}
    assert rows["demo21"]["accounts"] == ["training", "factorylab-demo"]
    assert rows["demo21"]["qos"] == "factorylab-course"
    disabled = copy.deepcopy(LOCAL)
    disabled["demo"]["enabled"] = False
    assert filters.demo_associations(disabled) == []


def test_demo_nodes_differ_and_have_their_own_addresses():
    nodes = filters.demo_nodes("3")
    assert [(n["name"], n["address"]) for n in nodes] == [
        ("c01", "10.213.0.11"),
        ("c02", "10.213.0.12"),
        ("c03", "10.213.0.13"),
    ]
    assert [(n["gpu_type"], n["gpu_count"]) for n in nodes] == [
        ("h100", 4),
        ("a100", 2),
        ("h100", 4),
    ]
    assert len(filters.demo_nodes(8)) == 8


@pytest.mark.parametrize("count", ["0", "9", "99", "", "two", "-1", "2.5"])
def test_a_bad_node_count_is_a_sentence_that_names_it(count):
    with pytest.raises(ValueError) as caught:
        filters.demo_nodes(count)
    message = str(caught.value)
    assert message.startswith(f"NODES={count or '(empty)'}: the demo cluster has 1 to 8")
    assert "make up NODES=2" in message


def test_no_partition_shares_cores_unless_one_asks():
    site = copy.deepcopy(LOCAL)
    del site["partitions"]["lab"], site["profiles"]["lab"]
    assert filters.slurm_limits(site)["oversubscribe"] == {}
