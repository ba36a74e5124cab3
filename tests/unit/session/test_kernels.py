"""Which kernel jobs a user may open, their kernelspecs, and the checks of a launch."""

import pytest

from spawners.session.entitlements import Entitlements, unrestricted
from spawners.session.kernels import (
    PROVISIONER,
    check_kernels,
    kernel_request,
    kernelspec,
    session_kernelspecs,
    usable_kernels,
)
from spawners.session.request import InvalidRequest
from spawners.session.site_checks import SITE_CHECKS
from spawners.site.loader import SiteFileError, parse_site


def test_the_demo_kernel_is_a_gpu_request(site):
    kernel, request = kernel_request(
        site, "pytorch-gpu", {"partition": "gpu", "gpus": "1"}, unrestricted(site)
    )
    assert (request.partition, request.gpus, request.gpu_option) == ("gpu", 1, "--gres=gpu:1")
    assert kernel.idle_limit == 1800


def test_a_kernelspec_names_the_provisioner_and_interrupts_by_message(site):
    spec = kernelspec(site, "pytorch-gpu", "/opt/factorylab/envs/base/bin/python")
    assert spec["display_name"] == "PyTorch · 1 GPU (Slurm job)"
    assert spec["interrupt_mode"] == "message"
    assert spec["metadata"]["supported_encryption"] == ["curve"]
    provisioner = spec["metadata"]["kernel_provisioner"]
    assert provisioner["provisioner_name"] == PROVISIONER
    assert provisioner["config"] == {
        "kernel": "pytorch-gpu",
        "options": {
            "partition": "gpu",
            "image": "pytorch",
            "gpus": "1",
            "cpus": "1",
            "memory": "2G",
            "walltime": "01:00:00",
        },
    }
    assert spec["argv"][-2:] == ["-f", "{connection_file}"]


# What a user may write into a kernelspec they copied and edited: every one is refused
# with the field named, before anything is submitted.
HOSTILE = [
    ("pytorch-gpu", {"partition": "gpu", "gpus": "64"}, "gpus"),
    ("pytorch-gpu", {"partition": "gpu\n#SBATCH --uid=0"}, "partition"),
    ("pytorch-gpu", {"partition": "debug"}, "partition"),
    ("pytorch-gpu", {"image": "../../../bin"}, "image"),
    ("pytorch-gpu", {"walltime": "99:00:00", "partition": "gpu"}, "walltime"),
    ("pytorch-gpu", {"account": "someone-else"}, "account"),
    ("pytorch-gpu", {"reservation": "maintenance"}, "reservation"),
    ("pytorch-gpu", {"argv": ["/bin/sh"]}, "argv"),
    ("pytorch-gpu", ["partition"], "kernel"),
    ("no-such-kernel", {}, "kernel"),
    (["pytorch-gpu"], {}, "kernel"),
]


@pytest.mark.parametrize(("name", "options", "field"), HOSTILE)
def test_a_hostile_kernelspec_is_refused_with_its_field(site, name, options, field):
    with pytest.raises(InvalidRequest) as refused:
        kernel_request(site, name, options, unrestricted(site))
    assert refused.value.field == field


def test_a_kernel_for_a_group_is_only_for_its_members(site):
    data = site.model_dump(mode="json")
    data["kernels"]["pytorch-gpu"]["groups"] = ["factorylab-testers"]
    restricted = parse_site(data, "site.yaml", SITE_CHECKS)
    outsider = unrestricted(restricted)
    member = Entitlements(
        "demo01", frozenset({"factorylab-testers"}), outsider.partitions, (), (), ()
    )
    assert usable_kernels(restricted, outsider) == []
    assert usable_kernels(restricted, member) == ["pytorch-gpu", "idle-test"]
    assert session_kernelspecs(restricted, outsider, "/x/bin/python") == {}
    with pytest.raises(InvalidRequest, match="not open to you"):
        kernel_request(restricted, "pytorch-gpu", {}, outsider)


def test_a_site_kernel_beyond_its_partition_is_a_site_file_error(site):
    data = site.model_dump(mode="json")
    data["kernels"]["pytorch-gpu"]["gpus"] = 9
    data["kernels"]["big"] = dict(data["kernels"]["pytorch-gpu"], gpus=1, account="x")
    with pytest.raises(SiteFileError) as error:
        parse_site(data, "site.yaml", SITE_CHECKS)
    text = str(error.value)
    assert "kernels.pytorch-gpu.gpus: 9 is outside the allowed range 0-4" in text
    assert "kernels.big: a kernel names no account or reservation" in text
    assert check_kernels(site) == []
