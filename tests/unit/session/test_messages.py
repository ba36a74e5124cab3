import time

import pytest

from spawners.session.messages import explain_reason, ordinal, pending_message


@pytest.mark.parametrize(
    ("reason", "gpus", "words"),
    [
        ("Resources", 1, "waiting for a free GPU in partition gpu"),
        ("Resources", 0, "free CPUs or memory"),
        ("Priority", 0, "higher priority"),
        ("PartitionDown", 0, "is down"),
        ("QOSMaxGRESPerUser", 1, "as many GPUs as your QOS allows"),
        ("SomethingNew", 0, "Slurm reason: SomethingNew"),
    ],
)
def test_reasons_in_plain_words(reason, gpus, words):
    assert words in explain_reason(reason, "gpu", gpus)


@pytest.mark.parametrize(
    ("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (22, "22nd")]
)
def test_ordinals(n, text):
    assert ordinal(n) == text


def test_pending_message_has_reason_position_and_expected_start():
    soon = int(time.time()) + 600
    message = pending_message("Resources", "gpu", 1, 2, soon)
    assert message.startswith(
        "Waiting for a free GPU in partition gpu; 2nd in line; expected start "
    )
    assert pending_message("Priority", "cpu", 0, None, 0).endswith("partition cpu.")
