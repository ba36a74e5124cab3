import json
import re

import pytest

from spawners.hub.form import options_from_form, render_form
from spawners.session.entitlements import Entitlements, partition_limits
from spawners.slurm.cluster import ClusterState
from spawners.slurm.partitions import partition_loads

from ..slurm.test_cluster import SINFO


def test_a_card_alone_means_the_card():
    form = {"profile": ["gpu-2h"], "partition": ["cpu"], "cpus": ["1"], "memory": [""]}
    assert options_from_form(form) == {"profile": "gpu-2h"}


def test_customised_fields_are_kept_and_empty_ones_dropped():
    form = {"profile": ["gpu-2h"], "customise": ["on"], "walltime": ["00:30:00"], "gpus": [""]}
    assert options_from_form(form) == {"profile": "gpu-2h", "walltime": "00:30:00"}
    custom = {"profile": [""], "customise": ["on"], "partition": ["gpu"], "_xsrf": ["t"]}
    assert options_from_form(custom) == {"partition": "gpu"}


def test_opt_query_parameters_select_a_profile():
    # JupyterHub strips "opt-" before options_from_query.
    assert options_from_form({"profile": ["course-gpu"]}) == {"profile": "course-gpu"}


@pytest.fixture
def everyone(site):
    groups = frozenset({"factorylab-users"})
    return Entitlements(
        "demo03",
        groups,
        partition_limits(site, groups),
        ("cpu-notebook", "gpu-2h", "cpu-large"),
        ("factorylab-demo",),
        (),
    )


@pytest.fixture
def state():
    return ClusterState(partition_loads(SINFO["nodes"]), (), 1.0, 1000.0)


def _data(page: str) -> dict:
    raw = re.search(r'id="factorylab-form-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(raw)


def test_form_shows_cards_free_resources_and_limits(site, everyone, state):
    page = render_form(site, everyone, state, {}, "/hub/factorylab/static/", now=1004.0)
    assert page.count('name="profile"') == 4  # three profiles and Custom
    assert (
        'id="profile-cpu-notebook"\n               value="cpu-notebook" autocomplete="off" checked'
        in page
    )
    assert "3 of 4 GPUs free (3 h100); 62 of 64 CPUs free" in page
    assert "3 GPUs free now" in page and "as of 4 s ago" in page
    assert 'src="/hub/factorylab/static/factorylab-form.js"' in page
    assert _data(page)["profiles"]["gpu-2h"]["gpus"] == "1"
    assert 'name="reservation"' not in page  # no reservation to offer
    assert '<option value="factorylab-demo"' in page


def test_last_choice_is_remembered(site, everyone, state):
    page = render_form(site, everyone, state, {"profile": "gpu-2h"}, "/s")
    assert 'value="gpu-2h" autocomplete="off" checked' in page
    custom = render_form(site, everyone, state, {"partition": "gpu", "gpus": "2"}, "/s")
    assert 'id="profile-custom"\n               value="" autocomplete="off" checked' in custom
    assert 'name="gpus" min="0"\n               max="4" value="2"' in custom


def test_a_refused_choice_comes_back_as_typed_and_escaped(site, everyone, state):
    hostile = {"partition": "gpu", "memory": '"><script>alert(1)</script>', "gpus": "9"}
    page = render_form(site, everyone, state, hostile, "/s")
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'value="9"' in page


def test_unknown_availability_is_said_plainly(site, everyone):
    page = render_form(site, everyone, ClusterState(error="timeout"), {}, "/s")
    assert "Free resources are unknown right now" in page
    assert "free now" not in page


def test_open_courses_are_cards_that_link_to_the_course(site, everyone, state):
    assert 'id="fl-courses"' not in render_form(site, everyone, state, {}, "/s")
    card = {
        "name": "intro",
        "title": "Intro <GPUs>",
        "ends": "2026-12-01T11:00",
        "url": "/hub/course/intro",
    }
    page = render_form(site, everyone, state, {}, "/s", courses=[card])
    assert 'data-course="intro"' in page and 'href="/hub/course/intro"' in page
    assert "Intro &lt;GPUs&gt;" in page and "Until 2026-12-01T11:00" in page
