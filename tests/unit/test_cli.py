"""``factorylab job-script``: the batch script a spawn would submit, after the same checks."""

from __future__ import annotations

import pwd

import pytest

from spawners.cli import main
from spawners.hub import options
from spawners.session.entitlements import unix_groups
from spawners.session.job import render_job_script, session_job_spec
from spawners.session.kernels import kernelspecs_for
from spawners.session.request import entitlements_for, parse_request
from spawners.slurm.cluster import ClusterState

from .conftest import REPO

SITE = str(REPO / "hub_config" / "site.local.yaml")


@pytest.fixture
def user() -> str:
    """A user that exists on any machine (the script is rendered for their home)."""
    return pwd.getpwuid(0).pw_name


class _NoCluster:
    """A cluster cache whose scheduler does not answer: no live figures to check."""

    async def get(self) -> ClusterState:
        return ClusterState(error="no scheduler in unit tests")


@pytest.fixture(autouse=True)
def _no_slurm(monkeypatch):
    """No Slurm here: no accounts or reservations from it, no live figures."""

    async def _no_accounts(site, user, cluster):
        return entitlements_for(site, user, unix_groups(user), (), ())

    monkeypatch.setattr(options, "user_entitlements", _no_accounts)
    monkeypatch.setattr("spawners.cli.user_entitlements", _no_accounts)
    monkeypatch.setattr("spawners.cli.shared_cluster_state", lambda site: _NoCluster())


def test_job_script_prints_what_the_hub_renders(site, user, capsys):
    assert main(["job-script", SITE, "--user", user, "--options", '{"partition": "cpu"}']) == 0
    printed = capsys.readouterr().out
    home = pwd.getpwnam(user).pw_dir
    request = parse_request({"partition": "cpu"}, site)
    # the session's kernel jobs too, those this user's groups may open
    allowed = entitlements_for(site, user, unix_groups(user), (), ())
    kernels = kernelspecs_for(site, request, allowed)
    spec = session_job_spec(site, request, user, home, "", kernelspecs=kernels)
    assert printed == render_job_script(spec)
    assert "#SBATCH --partition=cpu" in printed and f"#SBATCH --chdir={home}" in printed
    assert "FACTORYLAB_KERNELSPECS=" in printed


def test_job_script_refuses_what_a_spawn_refuses(user, capsys):
    assert main(["job-script", SITE, "--user", user, "--options", '{"gpus": "9"}']) == 1
    err = capsys.readouterr().err
    assert err.startswith("Your session would not be submitted. gpus:")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--user", "no-such-user-x"], "no user named 'no-such-user-x'"),
        (["--user", "root", "--options", "[1]"], "--options must be a JSON object"),
        (["--user", "root", "--options", "{"], "Expecting property name"),
        (["--user", "root", "--server", "../x"], "server names may use letters"),
    ],
)
def test_job_script_bad_input_is_a_sentence(argv, message, capsys):
    assert main(["job-script", SITE, *argv]) == 2
    assert message in capsys.readouterr().err
