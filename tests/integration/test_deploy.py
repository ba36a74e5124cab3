"""What `make up` leaves behind: idempotent, least-privileged, documented secrets."""

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from ..support import services
from ..support.nodes import compute_nodes, node_address
from ..unit.conftest import REPO


def _as_hub(*argv):
    return subprocess.run(
        ["runuser", "-u", "factorylab", "--", *argv], capture_output=True, text=True, timeout=30
    )


@pytest.mark.timeout(900)  # `make up` alone may take its 600 s
def test_second_make_up_changes_nothing():
    # Issue 14, 5: the hub's account wrote `x;touch /root/…` into the token file in its
    # state directory, and the next `make up` ran it as root. Nothing there is read now.
    proof = Path("/root/factorylab-pwned")
    proof.unlink(missing_ok=True)
    planted = _as_hub("sh", "-c", f"printf 'x;touch {proof}' > /var/lib/factorylab/admin-api.token")
    assert planted.returncode == 0, planted.stderr
    result = subprocess.run(
        ["make", "-s", "up"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # One recap line per host: the login node and every compute node, reached over SSH.
    recaps = dict(
        re.findall(
            r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0",
            result.stdout,
            re.MULTILINE,
        )
    )
    assert set(recaps) == {"localhost", *compute_nodes()}, result.stdout[-2000:]
    changed = [line for line in result.stdout.splitlines() if line.startswith("changed:")]
    assert set(recaps.values()) == {"0"}, "\n".join(changed)
    assert "FactoryLab is up: http://127.0.0.1:8000" in result.stdout
    assert "demo01" in result.stdout
    assert not proof.exists(), "make up ran what the hub's account wrote"
    Path("/var/lib/factorylab/admin-api.token").unlink()


@pytest.fixture(autouse=True)
def _hub_answers(hub):
    yield
    hub.wait_until_up()  # make up may have restarted it


def test_hub_and_proxy_do_not_run_as_root():
    for name in ("hub", "proxy"):
        pid = services.pid(name)
        assert os.stat(f"/proc/{pid}").st_uid == int(
            subprocess.check_output(["id", "-u", "factorylab"]).strip()
        ), name


# What sudo (1.9, with -n) says when its policy refuses; a refused command never runs.
SUDO_REFUSAL = re.compile(
    r"sudo: a password is required"
    r"|sudo: sorry, you are not allowed to .+"
    r"|Sorry, user \S+ is not allowed to execute .+"
)


def _sudo_parts(argv: list[str]) -> tuple[list[str], list[str]]:
    """``sudo -n [options] [command…]`` -> (options, command)."""
    assert argv[:2] == ["sudo", "-n"], argv
    options, rest = [], list(argv[2:])
    while rest and rest[0].startswith("-"):
        options.append(rest.pop(0))
        if options[-1] == "-u":
            options.append(rest.pop(0))
    return options, rest


def _refused_by_sudo(result: subprocess.CompletedProcess) -> bool:
    """sudo's own refusal: exit status 1, no output, and only sudo's refusal on stderr.

    A command that sudo ran and that failed has its own output and status instead.
    """
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return (
        result.returncode == 1
        and not result.stdout
        and bool(lines)
        and all(SUDO_REFUSAL.fullmatch(line) for line in lines)
    )


def _policy_allows(options: list[str], command: list[str]) -> bool:
    """sudo's verdict on ``command`` without running it (list mode: ``sudo -n -l …``).

    Exit 0 printing the command's full path when the policy allows it; exit 1 in
    silence when not. (List mode takes no -i, -s or -E.)
    """
    listing = _as_hub("sudo", "-n", "-l", *options, *command)
    assert listing.returncode in (0, 1) and not listing.stderr, listing
    if listing.returncode == 0:
        assert listing.stdout.split() == command, listing.stdout
    else:
        assert not listing.stdout, listing.stdout
    return listing.returncode == 0


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["sudo", "-n", "-u", "demo01", "/usr/bin/sbatch", "--version"], True),
        (["sudo", "-n", "-u", "demo01", "/usr/bin/scancel", "--version"], True),
        # the hub reads the queue as itself; as a user it could read their job scripts
        (["sudo", "-n", "-u", "demo01", "/usr/bin/squeue", "-h", "-u", "nobody"], False),
        (["sudo", "-n", "-u", "demo01", "/usr/bin/scontrol", "write", "batch_script", "1"], False),
        (["sudo", "-n", "-u", "demo01", "/bin/true"], False),
        (["sudo", "-n", "-u", "demo01", "/bin/bash", "-c", "id"], False),
        (["sudo", "-n", "-u", "root", "/usr/bin/squeue"], False),
        (["sudo", "-n", "/usr/bin/scontrol", "show", "config"], False),
        (["sudo", "-n", "-u", "factorylab", "/usr/bin/squeue"], False),
        (["sudo", "-n", "-E", "-u", "demo01", "/usr/bin/squeue"], False),
        (["sudo", "-n", "-u", "demo01", "/usr/bin/sinfo"], False),  # not a verb it needs
        (["sudo", "-n", "-u", "nobody", "/usr/bin/squeue"], False),  # not a FactoryLab user
        (["sudo", "-n", "-u", "slurm", "/usr/bin/scontrol", "show", "config"], False),
        (["sudo", "-n", "-u", "slurm", "/bin/true"], False),
        (["sudo", "-n", "-u", "root", "/usr/local/sbin/factorylab-extend", "1", "60"], False),
        (["sudo", "-n", "-i"], False),
        (["sudo", "-n", "-s"], False),
    ],
)
def test_hub_may_only_run_slurm_verbs_as_users(argv, allowed):
    options, command = _sudo_parts(argv)
    result = _as_hub(*argv)
    if allowed:
        assert result.returncode == 0, (argv, result.stderr)
    else:  # refused by sudo itself, not merely failed once run
        assert _refused_by_sudo(result), (argv, result.returncode, result.stdout, result.stderr)
    if command and not {"-i", "-s", "-E"} & set(options):
        assert _policy_allows(options, command) is allowed, argv


def test_a_permitted_command_that_fails_is_not_taken_for_a_refusal():
    """The check above tells sudo's refusal from a command that sudo ran and that failed."""
    argv = ["sudo", "-n", "-u", "demo01", "/usr/bin/sbatch", "--no-such-option"]
    result = _as_hub(*argv)
    assert result.returncode != 0 and "--no-such-option" in result.stderr, result
    assert not _refused_by_sudo(result), result.stderr
    assert _policy_allows(*_sudo_parts(argv))
    refused = _as_hub("sudo", "-n", "-u", "demo01", "/usr/bin/sinfo", "--no-such-option")
    assert _refused_by_sudo(refused), refused.stderr
    assert not _policy_allows(*_sudo_parts(["sudo", "-n", "-u", "demo01", "/usr/bin/sinfo"]))


def test_the_hub_may_run_nothing_as_root():
    listing = _as_hub("sudo", "-n", "-l")
    assert listing.returncode == 0, listing.stderr
    rules = listing.stdout.split("may run the following commands", 1)[1]
    runas = set(re.findall(r"^\s*\(([^)]*)\)", rules, re.MULTILINE))
    assert runas == {"%factorylab-users", "slurm"}, rules
    assert "root" not in rules.replace("/usr/local/sbin", "")


def test_the_operator_command_is_the_extend_helper_and_it_checks_the_job():
    helper = "/usr/local/sbin/factorylab-extend"
    # allowed by sudo as SlurmUser, then refused by the helper: job 1 is no session
    result = _as_hub("sudo", "-n", "-u", "slurm", helper, "1", "60")
    assert result.returncode == 1 and "is not a running session" in result.stderr
    result = _as_hub("sudo", "-n", "-u", "slurm", helper, "1;id", "60")
    assert result.returncode == 1 and "usage" in result.stderr
    result = _as_hub("sudo", "-n", "/usr/bin/scontrol", "update", "JobId=1", "TimeLimit=60")
    assert result.returncode != 0 and "password is required" in result.stderr
    assert oct(Path(helper).stat().st_mode & 0o777) == "0o755" and Path(helper).owner() == "root"


def test_the_extend_helper_refuses_a_job_the_hub_did_not_submit():
    """A user can name and label their own job like a session; it has no hub signature."""
    job = subprocess.run(
        [
            "runuser",
            "-u",
            "demo05",
            "--",
            "sbatch",
            "--parsable",
            "--output=/dev/null",
            "--job-name=factorylab",
            "--comment=factorylab:demo05:default",
            "-p",
            "cpu",
            "--mem=100M",
            "-t",
            "10",
            "--wrap",
            "sleep 300",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    try:
        for _ in range(60):
            state = subprocess.run(
                ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True
            ).stdout.strip()
            if state == "RUNNING":
                break
            time.sleep(0.5)
        helper = "/usr/local/sbin/factorylab-extend"
        result = _as_hub("sudo", "-n", "-u", "slurm", helper, job, "100000")
        assert "beyond the longest session of partition cpu (480)" in result.stderr
        result = _as_hub("sudo", "-n", "-u", "slurm", helper, job, "20")
        assert result.returncode == 1 and "was not submitted by the hub" in result.stderr, (
            result.stderr
        )
        limit = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%l"], capture_output=True, text=True
        ).stdout.strip()
        assert limit == "10:00", limit
    finally:
        subprocess.run(["scancel", job], check=False)


def test_slurmctld_runs_as_slurm_user_not_root():
    pid = int(Path("/run/slurmctld.pid").read_text())
    assert Path(f"/proc/{pid}").owner() == "slurm"
    state = Path("/var/lib/slurm/slurmctld")  # job scripts: internal-SSL keys, Dask config
    assert state.owner() == "slurm" and stat.S_IMODE(state.stat().st_mode) == 0o700
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
    assert re.search(r"^SlurmUser\s*=\s*slurm\(", config.stdout, re.MULTILINE), config.stdout


def test_secrets_are_root_only_and_out_of_the_hubs_reach():
    for path in (
        "/etc/factorylab/admin-api.token",
        "/etc/factorylab/proxy.token",
        "/etc/factorylab/metrics-api.token",
        "/etc/factorylab/prometheus-web.password",
        "/etc/factorylab/demo-admin.password",
    ):
        info = os.stat(path)
        assert info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0o600, path
        assert _as_hub("cat", path).returncode != 0
    signing = os.stat("/etc/factorylab/session-signing.key")
    assert signing.st_uid == 0 and stat.S_IMODE(signing.st_mode) == 0o640
    assert _as_hub("touch", "/etc/factorylab/x").returncode != 0


def test_admin_token_has_exactly_the_automation_scopes(hub):
    model = hub.api("GET", "/user").json()
    assert model["kind"] == "service" and model["name"] == "factorylab-admin"
    # exactly what ADMIN_SCOPES (admin:users, admin:servers, tokens, read:metrics) expand to in
    # JupyterHub 6, unfiltered: nothing more (admin-ui, shutdown, proxy, …) and nothing less
    assert set(model["scopes"]) == {
        "admin:auth_state",
        "admin:server_state",
        "admin:servers",
        "admin:users",
        "delete:servers",
        "delete:users",
        "list:users",
        "read:metrics",
        "read:roles:users",
        "read:servers",
        "read:tokens",
        "read:users",
        "read:users:activity",
        "read:users:groups",
        "read:users:name",
        "servers",
        "start:servers",
        "tokens",
        "users",
        "users:activity",
    }, sorted(model["scopes"])


PLAYBOOK = ["/opt/factorylab/tools/bin/ansible-playbook", "site.yml"]


@pytest.mark.parametrize("nodes", ["0", "99", "two"])
def test_a_bad_node_count_is_a_sentence_and_changes_nothing(nodes):
    done = subprocess.run(
        ["make", "-s", "up", f"NODES={nodes}"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert f"NODES={nodes}: the demo cluster has 1 to 8 compute nodes." in done.stderr
    assert "PLAY" not in done.stdout  # refused before Ansible started
    # the playbook refuses it too, in its first task, when NODES bypasses the Makefile
    played = subprocess.run(
        [*PLAYBOOK, "-e", f"factorylab_demo_node_count={nodes}"],
        cwd=REPO / "ansible",
        capture_output=True,
        text=True,
    )
    assert played.returncode != 0
    assert f"NODES={nodes}: the demo cluster has 1 to 8" in played.stdout + played.stderr
    assert re.search(
        r"localhost\s*:\s*ok=\d+\s+changed=0\s+unreachable=0\s+failed=1", played.stdout
    )


def test_an_inventory_without_a_hub_host_is_a_sentence(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    played = subprocess.run(
        [*PLAYBOOK, "-i", str(inventory)], cwd=REPO / "ansible", capture_output=True, text=True
    )
    assert played.returncode != 0
    assert "in group `hub`; it needs exactly one" in played.stdout + played.stderr
    assert re.search(r"localhost\s*:\s*ok=0\s+changed=0\s+unreachable=0\s+failed=1", played.stdout)


@pytest.mark.timeout(900)
def test_the_site_example_inventory_deploys_over_ssh_without_touching_slurm(tmp_path):
    """inventories/site-example (a site's own Slurm, users and shared file systems), run
    against this demo cluster: the login node as `hub`, the demo nodes as `compute`,
    reached over SSH. The demo's site file, so what is deployed is what runs."""
    example = REPO / "ansible" / "inventories" / "site-example"
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(
        (example / "group_vars" / "all.yml").read_text()
    )
    nodes = {
        node: {
            "ansible_host": node_address(node),
            "ansible_ssh_private_key_file": "/etc/factorylab/nodes/id_ed25519",
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/etc/factorylab/nodes/known_hosts "
            "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
        }
        for node in compute_nodes()
    }
    local = {"localhost": {"ansible_connection": "local"}}
    inventory = {
        "all": {
            "children": {
                "hub": {"hosts": local},
                "slurm_controller": {"hosts": local},
                "compute": {"hosts": nodes},
            }
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    site_file = REPO / "hub_config" / "site.local.yaml"
    played = subprocess.run(
        # The image environments are the same role under either inventory (make up runs
        # it): skipped here, to keep CI short.
        [
            *PLAYBOOK,
            *("-i", str(tmp_path / "hosts.yml")),
            *("-e", f"factorylab_site_file={site_file}"),
            *("--skip-tags", "images"),
        ],
        cwd=REPO / "ansible",
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert played.returncode == 0, played.stdout[-3000:] + played.stderr[-2000:]
    recaps = dict(
        re.findall(
            r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", played.stdout, re.M
        )
    )
    assert set(recaps) == {"localhost", *nodes}, played.stdout[-2000:]
    changed = [line for line in played.stdout.splitlines() if line.startswith("changed:")]
    assert set(recaps.values()) == {"0"}, "\n".join(changed)
    # the site's Slurm and nodes are its own: neither role ran
    assert "TASK [slurm :" not in played.stdout and "TASK [nodes :" not in played.stdout
    assert "TASK [compute : Install the launcher's Python]" in played.stdout
