"""The profile wrapper's plumbing, without a hub."""

from types import SimpleNamespace

import pytest
from traitlets.config import Config

from spawners.hub.profiles import ProfilesSpawner
from spawners.hub.spawner import SlurmSpawner

from ..conftest import REPO

SITE = str(REPO / "hub_config" / "site.local.yaml")


@pytest.fixture
def wrapper():
    user = SimpleNamespace(name="demo01", url="/user/demo01/", escaped_name="demo01", id=1)
    return ProfilesSpawner(site_file=SITE, user=user, config=Config())


def test_profiles_come_from_the_site_file(wrapper, site):
    keys = [profile[1] for profile in wrapper.profiles]
    assert keys == [*site.profiles, ""]  # and the Custom card
    assert all(profile[2] is SlurmSpawner for profile in wrapper.profiles)


def test_timeouts_are_the_childs_not_jupyterhubs_defaults(wrapper, site):
    # JupyterHub's 60 s start_timeout would kill every session that waits in the queue.
    assert wrapper.start_timeout == site.slurm.max_queue_wait + site.slurm.server_start_timeout + 60
    assert wrapper.poll_interval == 5


def test_a_fresh_child_per_start_for_the_chosen_profile(wrapper):
    wrapper.child_state = {"ended_message": "ended at walltime", "job_id": "12"}
    wrapper.start_fresh_child("gpu-2h")
    child = wrapper.child_spawner
    assert isinstance(child, SlurmSpawner) and child.site_file == SITE
    assert wrapper.child_profile == "gpu-2h"
    assert child.job_id == "" and child.ended_message == "ended at walltime"
    wrapper.start_fresh_child("")
    assert wrapper.child_spawner is not child


def test_the_port_goes_to_the_waiting_child(wrapper):
    assert not wrapper.accept_port(8888)  # no child yet
    wrapper.start_fresh_child("cpu-notebook")
    child = wrapper.child_spawner
    assert not wrapper.accept_port(8888)  # the child is not waiting
    waiting = {}

    def accept(port):
        waiting["port"] = port
        return True

    child.accept_port = accept
    assert wrapper.accept_port(8889) and waiting == {"port": 8889}


def test_clear_state_keeps_why_it_ended_and_the_accepted_choice(wrapper):
    wrapper.start_fresh_child("gpu-2h")
    child = wrapper.child_spawner
    child.job_id = "77"
    child.ended_message = "Your session reached its time limit."
    child.accepted_options = {"profile": "gpu-2h"}
    wrapper.clear_state()
    assert wrapper.child_spawner is None
    assert wrapper.ended_message == "Your session reached its time limit."
    assert wrapper.accepted_options == {"profile": "gpu-2h"}
    state = wrapper.get_state()
    assert state["child_state"]["ended_message"].startswith("Your session")
    assert "job_id" not in state["child_state"]
