"""bench/cpu.py: which group a process counts in, and what each group spent."""

from bench.cpu import Process, busy_cpu_seconds, cpu_by_group, group_of, processes


def test_groups_follow_owner_and_command():
    assert group_of("demo03", "python -I - /x/jupyterhub-singleuser") == "session launchers"
    assert group_of("demo03", "/env/bin/python3 /env/bin/jupyterhub-singleuser --x") == (
        "session servers"
    )
    assert group_of("demo11", "/env/bin/python3 /env/bin/jupyter-lab --no-browser") == (
        "session servers"
    )
    assert group_of("demo11", "/bin/bash /var/spool/slurmd/job01/slurm_script") == (
        "other user processes"
    )
    assert (
        group_of(
            "factorylab",
            "/opt/factorylab/hub/bin/python3 /opt/factorylab/hub/bin/"
            "jupyterhub -f /etc/factorylab/jupyterhub_config.py",
        )
        == "hub"
    )
    assert group_of("factorylab", "node /opt/x/configurable-http-proxy --ip 127.0.0.1") == "proxy"
    assert group_of("root", "/usr/sbin/slurmd -D") == "Slurm (and its database)"
    assert group_of("root", "slurmstepd: [12.batch]") == "Slurm (and its database)"
    assert group_of("root", "/usr/sbin/sshd -D") == "other"
    assert group_of("root", "/work/.venv/bin/python -m bench.burst") == "bench clients"


def test_a_group_counts_what_its_processes_spent_in_between():
    before = {1: Process("hub", 100, 5.0), 2: Process("proxy", 100, 1.0)}
    after = {
        1: Process("hub", 100, 7.5),  # spent 2.5 s
        2: Process("session servers", 900, 3.0),  # pid 2 reused: counts from zero
        3: Process("session servers", 950, 2.0),  # new
    }
    assert cpu_by_group(before, after) == {"session servers": 5.0, "hub": 2.5}


def test_the_real_machine_is_read():
    assert busy_cpu_seconds() > 0
    mine = processes()
    assert mine and all(process.cpu_s >= 0 for process in mine.values())
