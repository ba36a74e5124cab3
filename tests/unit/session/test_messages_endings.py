import pytest

from spawners.session.messages import explain_ending
from spawners.slurm.jobs import SlurmJob


def _ended(state, exit_code=0, minutes=90):
    return SlurmJob(
        "9",
        "factorylab",
        "demo01",
        state,
        "None",
        "gpu",
        "gpu07",
        "gpu07",
        exit_code,
        0,
        0,
        0,
        minutes,
        "",
    )


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("TIMEOUT", "reached its time limit of 01:30:00"),
        ("OUT_OF_MEMORY", "ran out of memory. Start the next one with more memory"),
        ("NODE_FAIL", "its node (gpu07) failed"),
        ("CANCELLED", "cancelled outside FactoryLab"),
        ("PREEMPTED", "higher-priority job"),
        ("COMPLETED", "its server exited (state COMPLETED)"),
    ],
)
def test_each_ending_has_a_sentence(state, words):
    message = explain_ending(_ended(state))
    assert message.startswith("Your session (Slurm job 9) stopped because ")
    assert words in message


def test_failed_server_names_its_exit_code():
    assert "exited with exit code 3 (state FAILED)" in explain_ending(_ended("FAILED", 3))


def test_a_vanished_job():
    assert "no longer lists" in explain_ending(None)
