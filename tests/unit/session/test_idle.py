"""Idle limits per profile and partition, and the culler's decision per server."""

import datetime

import pytest

from spawners.hub.culler import server_owner, should_cull
from spawners.session.idle import idle_limit, idle_message, server_args
from spawners.session.request import parse_request

MINUTE = datetime.timedelta(minutes=1)


def test_limits_by_profile_then_partition_then_default(site):
    assert idle_limit(site, parse_request({"profile": "cpu-notebook"}, site)) == 4 * 3600
    assert idle_limit(site, parse_request({"partition": "gpu"}, site)) == 30 * 60
    assert idle_limit(site, parse_request({"profile": "idle-test"}, site)) == 30


def test_the_servers_own_kernel_culling_never_touches_a_busy_kernel():
    args = server_args(1800)
    assert "--MappingKernelManager.cull_idle_timeout=1800" in args
    assert "--MappingKernelManager.cull_busy=False" in args
    assert "--MappingKernelManager.cull_connected=True" in args  # open tabs do not count
    assert server_args(None) == []


def _server(**state):
    return {"url": "/user/demo36/", "state": {"child_state": state}}


def test_culls_by_kernel_activity_not_by_browser_traffic():
    now = 10_000.0
    # the hub saw browser traffic a minute ago, but no kernel ran for 31 minutes
    server = _server(idle_limit=1800, kernel_activity=now - 31 * 60)
    assert should_cull(server, inactive=MINUTE, now=now)
    # a kernel executed 5 minutes ago (an executing one reports "now")
    assert not should_cull(_server(idle_limit=1800, kernel_activity=now - 300), MINUTE, now)
    # no limit for this session: never
    assert not should_cull(_server(idle_limit=None, kernel_activity=0), MINUTE * 600, now)
    # no report yet: the hub's own activity decides
    assert should_cull(_server(idle_limit=60), inactive=MINUTE * 2, now=now)


def test_server_owner_from_the_servers_url():
    assert server_owner({"url": "/user/demo36/"}) == ("demo36", "")
    assert server_owner({"url": "/prefix/user/demo36/gpu-run/"}) == ("demo36", "gpu-run")
    with pytest.raises(ValueError):
        server_owner({"url": "/hub/admin"})


def test_the_message_says_why_and_what_was_freed():
    assert idle_message(31 * 60, 1) == (
        "Your session was stopped after 31 minutes without kernel activity, to free its GPU "
        "for others. Your files are kept; start a new session to continue."
    )
    assert "to free its GPUs" in idle_message(60, 2)
    assert "1 minute without" in idle_message(20, 0) and "its CPUs" in idle_message(20, 0)
