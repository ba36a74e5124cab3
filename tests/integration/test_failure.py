"""A job that dies before its server starts is reported at once, with its log."""

import os
import pwd
import re
import shutil
import time
from pathlib import Path

import pytest

from ..support.metrics import events_of, scrape, total


@pytest.fixture
def broken_runtime_dir():
    """Make demo39's Jupyter runtime directory impossible to create."""
    user = "demo39"
    account = pwd.getpwnam(user)
    share = Path(account.pw_dir) / ".local" / "share"
    share.mkdir(parents=True, exist_ok=True)
    for path in (share.parent, share):
        os.chown(path, account.pw_uid, account.pw_gid)
    blocker = share / "jupyter"
    shutil.rmtree(blocker, ignore_errors=True)
    blocker.write_text("not a directory\n")
    yield user
    blocker.unlink()


def test_early_death_shows_state_and_log_tail(hub, broken_runtime_dir):
    user = broken_runtime_dir
    failures = total(scrape(), "factorylab_spawn_failures_total", cause="job-ended")
    began = time.monotonic()
    response = hub.spawn(user, {"partition": "cpu"})
    elapsed = time.monotonic() - began
    assert response.status_code == 500, response.text
    message = response.json()["message"]
    assert "ended before its server started" in message
    assert "state FAILED, exit code 1" in message
    assert "Last lines of its log" in message and "NotADirectoryError" in message
    assert elapsed < 10, f"noticed after {elapsed:.1f} s"
    assert hub.server(user) is None
    # counted by cause, and logged with the sentence the user read
    assert total(scrape(), "factorylab_spawn_failures_total", cause="job-ended") == failures + 1
    job = re.search(r"Your session job (\d+) ", message).group(1)
    logged = [e for e in events_of(job) if e["event"] == "failed"]
    assert [e["cause"] for e in logged] == ["job-ended"], (job, logged)
    assert logged[0]["message"] == message and logged[0]["user"] == user
