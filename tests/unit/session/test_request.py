import pytest

from spawners.session.request import InvalidRequest, parse_request


def test_defaults_come_from_the_site(site):
    request = parse_request({}, site)
    assert (request.partition, request.image, request.gpus) == ("cpu", "base", 0)
    assert request.memory == "1G" and request.walltime == "02:00:00" and request.gpu_option is None


def test_gpu_request(site):
    request = parse_request({"partition": "gpu", "gpus": 2, "gpu_type": "h100"}, site)
    assert request.gpu_option == "--gres=gpu:h100:2"
    assert request.cpus == 2  # cpus_per_gpu: 1
    assert parse_request({"partition": "gpu"}, site).gpu_option == "--gres=gpu:1"


def test_form_lists_are_accepted(site):
    request = parse_request({"partition": ["gpu"], "gpus": ["1"], "walltime": ["00:30:00"]}, site)
    assert (request.partition, request.gpus, request.walltime_seconds) == ("gpu", 1, 1800)


INJECTION = "cpu\n#SBATCH --account=someone-else"
HOSTILE = [
    ({"partition": INJECTION}, "partition", "control characters"),
    ({"image": "base\n#SBATCH --qos=high"}, "image", "control characters"),
    ({"walltime": "01:00:00\n#SBATCH --reservation=x"}, "walltime", "control characters"),
    ({"memory": "1G\r\n#SBATCH --exclusive"}, "memory", "control characters"),
    ({"gpus": "1\n#SBATCH --gres=gpu:8"}, "gpus", "control characters"),
    ({"gpu_type": "h100\n"}, "gpu_type", "has no GPUs"),
    ({"partition": "gpu", "gpu_type": "h100;rm -rf ~"}, "gpu_type", "not offered"),
    ({"partition": "cpu; sbatch evil.sh"}, "partition", "not offered"),
    ({"partition": "$(id)"}, "partition", "not offered"),
    ({"image": "`reboot`"}, "image", "not offered"),
    ({"partition": "debug"}, "partition", "not offered"),
    ({"image": "tensorflow"}, "image", "not offered"),
    ({"partition": "cpu", "gpus": 1}, "gpus", "has no GPUs"),
    ({"partition": "gpu", "gpus": 5}, "gpus", "outside"),
    ({"partition": "gpu", "gpus": -1}, "gpus", "whole number"),
    ({"partition": "gpu", "gpus": "1.5"}, "gpus", "whole number"),
    ({"partition": "gpu", "gpus": True}, "gpus", "single value"),
    ({"cpus": 0}, "cpus", "outside"),
    ({"cpus": 9}, "cpus", "outside"),
    ({"cpus": "four"}, "cpus", "whole number"),
    ({"walltime": "09:00:00"}, "walltime", "at most 08:00:00"),
    ({"walltime": "tomorrow"}, "walltime", "not a walltime"),
    ({"walltime": "99999"}, "walltime", "at most"),
    ({"walltime": "99999999"}, "walltime", "not a walltime"),
    ({"memory": "17G"}, "memory", "at most 16G"),
    ({"memory": "many"}, "memory", "not a memory size"),
    ({"memory": "1G --account=x"}, "memory", "not a memory size"),
    ({"memory": "9" * 200}, "memory", "longer than"),
    ({"partition": "c" * 65}, "partition", "longer than"),
    ({"partition": ["cpu", "gpu"]}, "partition", "exactly one"),
    ({"partition": {"name": "cpu"}}, "partition", "single value"),
    ({"account": "other-project"}, "account", "not one of your accounts"),
    ({"account": "training\n#SBATCH --qos=high"}, "account", "control characters"),
    ({"account": "training --qos=high"}, "account", "not one of your accounts"),
    ({"reservation": "course"}, "reservation", "not an active reservation you may use"),
    ({"reservation": "course\n#SBATCH -A x"}, "reservation", "control characters"),
    ({"profile": "gpu-2h\n#SBATCH --exclusive"}, "profile", "control characters"),
    ({"profile": "nonexistent"}, "profile", "not a profile you can use"),
    ({"profile": "$(curl evil)"}, "profile", "not a profile you can use"),
    ({"profile": "gpu-2h", "gpus": 9}, "gpus", "outside"),
    ({"qos": "high"}, "qos", "not a session option"),
    ({"partition": "gpu", "gpus": "\u00b2"}, "gpus", "whole number"),
    ({"cpus": "\u0663"}, "cpus", "whole number"),
    ({"memory": "\u0662G"}, "memory", "not a memory size"),
    ({"walltime": "\u0661:00:00"}, "walltime", "not a walltime"),
]


@pytest.mark.parametrize(("options", "field", "words"), HOSTILE)
def test_hostile_or_wrong_input_is_refused_with_its_field(site, options, field, words):
    with pytest.raises(InvalidRequest) as info:
        parse_request(options, site)
    assert info.value.field == field
    assert words in str(info.value), str(info.value)
    assert str(info.value).startswith(f"{field}: ")


def test_at_least_thirty_hostile_cases():
    assert len(HOSTILE) >= 30


# -- with a user's entitlements: accounts, reservations, group limits, profiles ------
from spawners.session.entitlements import Entitlements, partition_limits  # noqa: E402
from spawners.slurm.partitions import PartitionLoad  # noqa: E402


@pytest.fixture
def course_member(site):
    groups = frozenset({"factorylab-users", "factorylab-course"})
    return Entitlements(
        user="demo21",
        groups=groups,
        partitions=partition_limits(site, groups),
        profiles=("course-gpu",),
        accounts=("training", "factorylab-demo"),
        reservations=("course-morning",),
    )


ENTITLED_HOSTILE = [
    ({"account": "someone-elses-project"}, "account", "not one of your accounts; choose one of"),
    ({"account": "training\n#SBATCH --account=other"}, "account", "control characters"),
    ({"account": "training;id"}, "account", "not one of your accounts"),
    ({"reservation": "staff-only"}, "reservation", "not an active reservation you may use"),
    ({"reservation": "course-morning\n#SBATCH -p gpu"}, "reservation", "control characters"),
    ({"profile": "gpu-2h"}, "profile", "not a profile you can use; choose one of: course-gpu"),
    ({"partition": "gpu", "gpus": 2}, "gpus", "outside the allowed range 0-1"),
    ({"walltime": "02:00:00"}, "walltime", "at most 01:00:00"),
    ({"partition": "gpu", "cpus": 5}, "cpus", "outside the allowed range 1-4"),
    ({"memory": "9G"}, "memory", "at most 8G"),
    ({"profile": "course-gpu", "walltime": "03:00:00"}, "walltime", "at most 01:00:00"),
]


@pytest.mark.parametrize(("options", "field", "words"), ENTITLED_HOSTILE)
def test_entitlements_refuse_with_their_field(site, course_member, options, field, words):
    with pytest.raises(InvalidRequest) as info:
        parse_request(options, site, course_member)
    assert info.value.field == field and words in str(info.value), str(info.value)


def test_profile_values_and_overrides(site, course_member):
    request = parse_request({"profile": "course-gpu"}, site, course_member)
    assert (request.partition, request.gpus, request.account, request.walltime) == (
        "gpu",
        1,
        "training",
        "01:00:00",
    )
    tuned = parse_request(
        {"profile": "course-gpu", "walltime": "00:30:00", "reservation": "course-morning"},
        site,
        course_member,
    )
    assert (tuned.walltime, tuned.reservation, tuned.profile) == (
        "00:30:00",
        "course-morning",
        "course-gpu",
    )


def test_gpus_style_partition(site):
    gpu = site.partitions["gpu"].model_copy(update={"gpu_request": "gpus"})
    styled = site.model_copy(update={"partitions": {**site.partitions, "gpu": gpu}})
    request = parse_request({"partition": "gpu", "gpus": 2, "gpu_type": "h100"}, styled)
    assert request.gpu_option == "--gpus=h100:2"


def test_live_state_refuses_what_no_node_can_hold(site):
    live = {
        "gpu": PartitionLoad(
            "gpu",
            nodes=1,
            usable_nodes=1,
            total_cpus=8,
            free_cpus=8,
            total_gpus=2,
            free_gpus=2,
            free_gpus_by_type={"h100": 2},
            largest_node_cpus=8,
            largest_node_gpus=2,
        ),
        "cpu": PartitionLoad("cpu", nodes=2, usable_nodes=0),
    }
    with pytest.raises(InvalidRequest, match="at most 2 GPUs fit on one node"):
        parse_request({"partition": "gpu", "gpus": 3}, site, None, live)
    with pytest.raises(InvalidRequest, match="no node in service"):
        parse_request({"partition": "cpu"}, site, None, live)
    assert parse_request({"partition": "gpu", "gpus": 2}, site, None, live).gpus == 2


def test_at_least_thirty_hostile_cases_in_all():
    assert len(HOSTILE) + len(ENTITLED_HOSTILE) >= 40
