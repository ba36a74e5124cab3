import pytest

from spawners.session_request import InvalidRequest, parse_request


def test_defaults_come_from_the_site(site):
    request = parse_request({}, site)
    assert (request.partition, request.image, request.gpus) == ("cpu", "base", 0)
    assert request.memory == "1G" and request.walltime == "02:00:00" and request.gres is None


def test_gpu_request(site):
    request = parse_request({"partition": "gpu", "gpus": 2, "gpu_type": "h100"}, site)
    assert request.gres == "gpu:h100:2"
    assert request.cpus == 2  # cpus_per_gpu: 1
    assert parse_request({"partition": "gpu"}, site).gres == "gpu:1"


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
    ({"account": "other-project"}, "account", "not a session option"),
    ({"reservation": "course"}, "reservation", "not a session option"),
    ({"qos": "high"}, "qos", "not a session option"),
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
