"""bench/first_cell.py: how a start splits, from the page loads the browser made."""

import pytest

from bench.first_cell import PHASES, phases


def test_a_start_splits_at_the_first_server_request_and_the_lab_page():
    loads = [
        (0.05, "/hub/spawn"),  # the form's POST; a quick spawn skips the pending page
        (3.0, "/user/demo16/"),
        (3.01, "/user/demo16/lab"),  # the server's redirect to its default URL, no login
        (3.1, "/hub/api/oauth2/authorize"),
        (3.2, "/user/demo16/oauth_callback"),
        (3.5, "/user/demo16/lab"),
        (4.0, "/user/demo16/lab/tree/bench-first-cell.ipynb"),
    ]
    split = phases(loads, "demo16", 9.5)
    assert list(split) == list(PHASES)
    assert split == {PHASES[0]: 3.0, PHASES[1]: 0.5, PHASES[2]: 6.0}
    assert sum(split.values()) == pytest.approx(9.5)


def test_a_start_that_never_reached_the_server_is_an_error():
    with pytest.raises(RuntimeError, match="unexpected page loads"):
        phases([(0.1, "/hub/spawn"), (0.3, "/hub/spawn-pending/demo16")], "demo16", 5.0)
