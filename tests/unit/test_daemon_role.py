"""The `daemon` role: one description, rendered for supervisord and for systemd.

The templates are rendered with Jinja2 as Ansible would (its `quote` filter is
shlex.quote) and the role's own filters, for the hub as the hub role describes it.
"""

import configparser
import importlib.util
import shlex

import jinja2
import pytest
import yaml

from .conftest import REPO

ROLE = REPO / "ansible" / "roles" / "daemon"
ROLES = REPO / "ansible" / "roles"

_spec = importlib.util.spec_from_file_location(
    "daemon_filters", ROLE / "filter_plugins" / "supervisor.py"
)
filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(filters)

HUB = {
    "daemon_name": "hub",
    "daemon_order": 50,
    "daemon_foreground_command": [
        "/opt/factorylab/hub/bin/jupyterhub",
        "--config=/etc/factorylab/jupyterhub_config.py",
    ],
    "daemon_run_as": "factorylab",
    "daemon_env_file": "/etc/factorylab/hub.env",
    "daemon_workdir": "/var/lib/factorylab",
    "daemon_umask": "0027",
}
HUB_ENV_FILE = (
    "# Managed by FactoryLab\nCONFIGPROXY_AUTH_TOKEN=0123abcd\n\n"
    "FACTORYLAB_ADMIN_API_TOKEN=4567ef\nFACTORYLAB_SITE=/etc/factorylab/site.yaml\n"
)


def _yaml(path):
    return yaml.safe_load(path.read_text())


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        trim_blocks=True,  # as Ansible's template module
        undefined=jinja2.StrictUndefined,
    )
    env.filters["quote"] = shlex.quote
    env.filters.update(filters.FilterModule().filters())
    return env


def _role_vars(**given) -> dict:
    """defaults, then the include's vars, then the role's vars, templated until stable."""
    context = {
        **_yaml(ROLE / "defaults" / "main.yml"),
        **given,
        **_yaml(ROLE / "vars" / "main.yml"),
    }
    context["ansible_managed"] = "managed"
    for _ in range(3):
        context = {
            key: _env().from_string(value).render(context) if isinstance(value, str) else value
            for key, value in context.items()
        }
    return context


def _program(given: dict, env_file: str = "") -> tuple[dict, configparser.SectionProxy]:
    context = _role_vars(**given)
    environment = {"PATH": context["daemon_path"]}
    if context["daemon_run_as"]:
        user = context["daemon_run_as"]
        environment |= {"HOME": "/var/lib/factorylab", "USER": user, "LOGNAME": user}
    environment |= filters.env_file_vars(env_file)
    text = _env().get_template("program.conf.j2").render(context, daemon_environment=environment)
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    parser.read_string(text)
    return context, parser[f"program:{context['daemon_program']}"]


def _includes() -> dict[tuple[str, str], dict]:
    """Every `include_role: name: daemon` of the roles (blocks too): {(role, name): vars}."""
    found = {}
    for tasks in sorted(ROLES.glob("*/tasks/*.yml")):
        role = tasks.parent.parent.name
        for task in _yaml(tasks) or []:
            for step in task.get("block", [task]):
                include = step.get("ansible.builtin.include_role") or {}
                if include.get("name") == "daemon" and include.get("tasks_from", "main") == "main":
                    found[role, step["vars"]["daemon_name"]] = step["vars"]
    return found


def _daemon_tasks() -> list[dict]:
    tasks = []
    for task in _yaml(ROLE / "tasks" / "main.yml"):
        tasks.extend(task.get("block", [task]))
    return tasks


def test_the_hub_is_a_supervisord_program_of_its_own_account_with_its_process_group():
    context, program = _program(HUB, HUB_ENV_FILE)
    assert context["daemon_program"] == "factorylab-hub"
    assert shlex.split(program["command"]) == HUB["daemon_foreground_command"]
    assert program["user"] == "factorylab"
    assert program["priority"] == "50"
    assert program["directory"] == "/var/lib/factorylab"
    assert program["umask"] == "0027"
    # the whole process group is signalled on stop, and killed after stopwaitsecs
    assert program["stopasgroup"] == "true"
    assert program["killasgroup"] == "true"
    assert program["stopsignal"] == "TERM"
    assert int(program["stopwaitsecs"]) >= 10  # the hub stops its services for up to 10 s
    assert program["autorestart"] == "unexpected" and program["exitcodes"] == "0"
    assert int(program["startsecs"]) > 0
    # stdout and stderr into the log the role creates root's (0640); never rotated, as a
    # rotated file would be created world-readable
    assert program["redirect_stderr"] == "true"
    assert program["stdout_logfile"] == "/var/log/factorylab/hub.log"
    assert program["stdout_logfile_maxbytes"] == "0"


def test_the_environment_file_reaches_the_program_and_nothing_else_does():
    _, program = _program(HUB, HUB_ENV_FILE)
    pairs = dict(pair.split("=", 1) for pair in program["environment"].split(","))
    assert pairs == {
        "PATH": '"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
        "HOME": '"/var/lib/factorylab"',
        "USER": '"factorylab"',
        "LOGNAME": '"factorylab"',
        "CONFIGPROXY_AUTH_TOKEN": '"0123abcd"',
        "FACTORYLAB_ADMIN_API_TOKEN": '"4567ef"',
        "FACTORYLAB_SITE": '"/etc/factorylab/site.yaml"',
    }


def test_a_root_daemon_has_no_user_and_its_log_by_default():
    context, program = _program(
        {
            "daemon_name": "slurmd",
            "daemon_order": 30,
            "daemon_foreground_command": ["/usr/sbin/slurmd", "-D"],
        }
    )
    assert "user" not in program
    assert program["stdout_logfile"] == "/var/log/factorylab/slurmd.log"
    assert program["command"] == "/usr/sbin/slurmd -D"
    assert context["daemon_unit"] == "factorylab-slurmd.service"


@pytest.mark.parametrize(
    "line",
    [
        "TOKEN=x;touch /root/pwned",
        "TOKEN=$(id)",
        'TOKEN="quoted"',
        "export TOKEN=x",
        "TOKEN=a b",
        "TOKEN=50%",
        "lower=x",
    ],
)
def test_an_environment_file_line_that_is_not_plain_key_value_fails_the_deploy(line):
    with pytest.raises(filters.AnsibleFilterError, match="line 2: not KEY=VALUE") as refused:
        filters.env_file_vars(f"GOOD=1\n{line}\n", "/etc/factorylab/hub.env")
    assert "x;touch" not in str(refused.value)  # the secret file's content is never shown


def test_values_supervisord_would_misread_are_refused_or_escaped():
    with pytest.raises(filters.AnsibleFilterError):
        filters.supervisor_environment({"TOKEN": 'a",EVIL="1'})
    with pytest.raises(filters.AnsibleFilterError):
        filters.supervisor_command(["/bin/sleep", "1 ; comment"])
    with pytest.raises(filters.AnsibleFilterError):
        filters.supervisor_command("/bin/sleep 1")
    assert filters.supervisor_command(["/bin/echo", "100%", "a b"]) == "/bin/echo 100%% 'a b'"


#: The login node's daemons, in their start order (supervisord priorities, low first).
LOGIN_START_ORDER = [
    "munge",
    "mariadb",
    "slurmdbd",
    "slurmctld",
    "node-{{ node.name }}",
    "proxy",
    "hub",
    "prometheus",
]


def test_every_daemon_runs_in_the_foreground_and_uses_only_the_roles_inputs():
    includes = _includes()
    login = set(LOGIN_START_ORDER)
    assert {name for role, name in includes if role != "compute"} == login
    assert {name for role, name in includes if role == "compute"} == {"munge", "slurmd"}
    inputs = set(_yaml(ROLE / "defaults" / "main.yml"))
    for name, given in includes.items():
        assert set(given) <= inputs, (name, set(given) - inputs)  # no pidfile, no daemonizes
        assert given["daemon_foreground_command"], name
    foreground = {
        ("slurm", "munge"): "--foreground",
        ("compute", "munge"): "--foreground",
        ("slurm", "slurmctld"): "-D",
        ("compute", "slurmd"): "-D",
        ("slurm", "slurmdbd"): "-D",
    }
    for key, flag in foreground.items():
        assert flag in includes[key]["daemon_foreground_command"], key
    # start order, and so the reverse for stopping: slurmdbd after MariaDB, before
    # slurmctld; the nodes after slurmctld; on a node, munged before slurmd
    order = sorted(
        (name for role, name in includes if role != "compute"),
        key=lambda name: next(v["daemon_order"] for (r, n), v in includes.items() if n == name),
    )
    assert order == LOGIN_START_ORDER
    node = {name: includes["compute", name]["daemon_order"] for name in ("munge", "slurmd")}
    assert node["munge"] < node["slurmd"]
    # a crashed node stays down, as a machine would, until make up boots it
    assert includes["nodes", "node-{{ node.name }}"]["daemon_autorestart"] == "false"
    assert includes["slurm", "mariadb"]["daemon_runtime_dirs"][0]["path"] == "/run/mysqld"


def test_the_program_description_holding_secrets_is_root_only_and_never_logged():
    tasks = _daemon_tasks()
    (describe,) = [
        t for t in tasks if t.get("ansible.builtin.template", {}).get("src") == "program.conf.j2"
    ]
    written = describe["ansible.builtin.template"]
    assert written["dest"] == "{{ daemon_program_conf }}"
    assert (written["owner"], written["group"], written["mode"]) == ("root", "root", "0600")
    assert describe["no_log"] == "{{ daemon_env_file | length > 0 }}"
    (slurp,) = [t for t in tasks if "ansible.builtin.slurp" in t]
    assert slurp["no_log"] is True
    # the file it copies must itself be root's and unreadable by others
    (check,) = [t for t in tasks if "ansible.builtin.assert" in t]
    assert "daemon_env_stat.stat.pw_name == 'root'" in check["ansible.builtin.assert"]["that"]


def test_the_log_is_created_root_only_before_supervisord_opens_it():
    (log,) = [
        t
        for t in _daemon_tasks()
        if t.get("ansible.builtin.file", {}).get("path") == "{{ daemon_log }}"
    ]
    assert log["ansible.builtin.file"]["mode"] == "0640"
    assert log["ansible.builtin.file"]["owner"] == "root"


def test_the_systemd_unit_is_the_same_daemon():
    context = _role_vars(
        **HUB,
        daemon_runtime_dirs=[
            {"path": "/run/factorylab x", "owner": "root", "group": "root", "mode": "0755"}
        ],
    )
    unit = _env().get_template("unit.service.j2").render(context)
    assert "Type=simple\n" in unit
    assert "PIDFile" not in unit
    command = " ".join(HUB["daemon_foreground_command"])
    assert f"ExecStart={command}\n" in unit
    assert "User=factorylab\n" in unit
    assert "EnvironmentFile=/etc/factorylab/hub.env\n" in unit
    assert "UMask=0027\n" in unit
    assert "ExecStartPre=+/usr/bin/install -d -o root -g root -m 0755 '/run/factorylab x'\n" in unit
    assert "PartOf=factorylab.target\n" in unit
    assert f"TimeoutStopSec={context['daemon_stopwaitsecs']}\n" in unit
