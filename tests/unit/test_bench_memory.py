"""bench/memory.py and bench/extensions.py: what they read from /proc and the env."""

import json
import os
import pwd

from bench.extensions import enabled_extensions, own_cpu_seconds, pss_mib
from bench.memory import pss_of_user, user_pids


def test_a_users_processes_and_their_pss():
    me = pwd.getpwuid(os.getuid()).pw_name
    assert os.getpid() in user_pids(os.getuid())
    pss, by_command = pss_of_user(me)
    assert by_command and pss >= pss_mib(os.getpid()) > 1
    assert pss == round(sum(by_command.values()), 1)


def test_own_cpu_seconds_grow_with_work():
    before = own_cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert own_cpu_seconds(os.getpid()) > before


def test_enabled_extensions_read_the_envs_config(tmp_path):
    config = tmp_path / "etc/jupyter/jupyter_server_config.d"
    config.mkdir(parents=True)
    for name, on in {"jupyterlab": True, "dask_labextension": True, "off_one": False}.items():
        body = {"ServerApp": {"jpserver_extensions": {name: on}}}
        (config / f"{name}.json").write_text(json.dumps(body))
    assert enabled_extensions(tmp_path) == ["dask_labextension"]
