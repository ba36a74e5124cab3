"""The doctor's probe jobs: their plan, their script, and what each report says."""

from __future__ import annotations

import ast
import json
import socket
import threading

import pytest

from spawners import dask_probe, probes
from spawners.probes import Probe

NONCE, ANSWER = "ab" * 16, "cd" * 16


@pytest.fixture
def node_port():
    """A port that answers like a probe job: with its nonce."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # closed
                return
            with connection:
                if connection.recv(64) == NONCE.encode():
                    connection.sendall(ANSWER.encode())

    threading.Thread(target=answer, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _report(port: int, changes: dict | None = None) -> dict:
    report = {
        "nonce": NONCE,
        "node": "localhost",
        "peer": "127.0.0.1",
        "port": port,
        "home": "/home/demo01",
        "home_inode": 42,
        "images": {"base": "ok", "pytorch": "ok"},
        "hub": "ok",
        "time": 1000.0,
        "received": 1000.5,
    }
    return {**report, **(changes or {})}


def _lines(report: dict | None) -> dict[str, tuple[bool, str]]:
    lines = probes.report_lines(Probe("cpu", "c01", NONCE, ANSWER), report, "/home/demo01", 42)
    return {name.split(" ", 2)[-1]: (ok, detail) for name, ok, detail in lines}


def test_a_healthy_report_is_all_ok(node_port):
    lines = _lines(_report(node_port))
    assert set(lines) == {"name", "home", "images", "reaches hub", "reached from hub", "clock"}
    assert all(ok for ok, _ in lines.values()), lines


@pytest.mark.parametrize(
    ("changes", "check", "fix"),
    [
        ({"node": "no-such-node.invalid"}, "name", "fix DNS or /etc/hosts"),
        ({"home_inode": 7}, "home", "share /home with the compute nodes"),
        (
            {"images": {"base": "ok", "chip": "No module named 'jupyterlab'"}},
            "images",
            "make images",
        ),
        ({"hub": "[Errno 111] Connection refused"}, "reaches hub", "hub.hub_connect_ip"),
        ({"port": 1}, "reached from hub", "let the hub host reach the nodes' ports"),
        ({"time": 990.0}, "clock", "run NTP"),
    ],
)
def test_each_broken_part_is_a_fail_with_its_fix(node_port, changes, check, fix):
    lines = _lines(_report(node_port, changes))
    ok, detail = lines[check]
    assert not ok and fix in detail, detail
    assert [name for name, (good, _) in lines.items() if not good] == [check]


def test_no_report_is_a_fail_that_says_where_to_look():
    [(name, ok, detail)] = probes.report_lines(Probe("gpu", None, NONCE), None, "/h", 1)
    assert name == "probe gpu" and not ok and "squeue" in detail


def test_the_job_script_is_python_with_its_settings(site):
    script = probes.job_script(site, Probe("gpu", "c02", NONCE), ("10.213.0.1", 40000))
    head = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --partition=gpu" in head and "#SBATCH --nodelist=c02" in head
    assert "#SBATCH --gres=gpu:1" in head and "#SBATCH --output=/dev/null" in head
    assert script.startswith("#!/usr/bin/python3 -I\n")
    tree = ast.parse(script)  # the whole script is one valid Python program
    assert any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)
    namespace: dict = {}
    exec(script.split("\n")[len(head) + 1], namespace)  # the settings line
    assert namespace["PROBE"]["nonce"] == NONCE
    assert namespace["PROBE"]["report_port"] == 40000
    assert namespace["PROBE"]["images"]["base"] == ["/opt/factorylab/envs/base/bin/python"]
    assert namespace["PROBE"]["answer"] != NONCE


def test_with_internal_ssl_the_node_must_be_in_the_certificates(node_port):
    probe = Probe("cpu", "c01", NONCE, ANSWER)
    report = _report(node_port, {"node": "localhost"})
    lines = probes.report_lines(probe, report, "/home/demo01", 42, ["DNS:c*"])
    assert [ok for name, ok, _ in lines if name.endswith("certificate")] == [True]
    report = _report(node_port, {"node": "gpu7.example.org"})
    lines = probes.report_lines(probe, report, "/home/demo01", 42, ["DNS:*.cpu.example.org"])
    [(ok, detail)] = [(ok, d) for name, ok, d in lines if name.endswith("certificate")]
    assert not ok and "add DNS:gpu7.example.org" in detail


@pytest.mark.parametrize(
    "data",
    [b"[1]\n", b"{}\n", b"not json", b'{"nonce": "other"}\n'],
)
def test_what_is_not_a_well_formed_report_is_no_report(data):
    assert probes.parse_report(data, {NONCE}) is None


def test_a_report_with_a_wrong_type_is_no_report(node_port):
    good = {k: v for k, v in _report(node_port).items() if k not in ("peer", "received")}
    assert probes.parse_report(json.dumps(good).encode(), {NONCE}) is not None
    for field, bad in (("port", "80"), ("time", "now"), ("images", []), ("port", 0)):
        data = json.dumps({**good, field: bad}).encode()
        assert probes.parse_report(data, {NONCE}) is None, field


def test_collect_reads_side_by_side_and_keeps_the_first_valid_report(node_port):
    probe = Probe("cpu", "c01", NONCE, ANSWER)
    good = {k: v for k, v in _report(node_port).items() if k not in ("peer", "received")}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = listener.getsockname()
        silent = socket.create_connection(address)  # says nothing: holds up nobody
        junk = socket.create_connection(address)
        junk.sendall(b"[1]\n")
        first = socket.create_connection(address)
        first.sendall(json.dumps({**good, "hub": "first"}).encode() + b"\n")
        reports = probes.collect(listener, [probe], timeout=5)
        for sock in (silent, junk, first):
            sock.close()
    assert reports[NONCE]["hub"] == "first" and reports[NONCE]["peer"] == "127.0.0.1"


def test_the_dask_check_says_which_worker_joined():
    ok = dask_probe.report_line("c01", "c02", {"worker_nodes": ["c02"], "scheduler_node": "c01"})
    assert ok == ("dask c02->c01", True, "a worker on c02 joined a scheduler on c01")
    _, good, detail = dask_probe.report_line("c01", "c02", {"worker_nodes": []})
    assert not good and "let the compute nodes reach each other's ports" in detail
    _, good, detail = dask_probe.report_line("c01", "c02", None)
    assert not good and "see squeue" in detail


def test_the_dask_jobs_run_the_default_image_on_their_nodes(site):
    probe = Probe("cpu", "c02", NONCE)
    script = dask_probe.job_script(site, probe, "worker", "/home/demo01/x", ("10.213.0.1", 1))
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash" and "#SBATCH --nodelist=c02" in lines
    assert "exec /opt/factorylab/envs/base/bin/python -I - <<'FACTORYLAB_DOCTOR'" in lines
    assert lines[-1] == "FACTORYLAB_DOCTOR"
    start = next(i for i, line in enumerate(lines) if line.startswith("exec ")) + 1
    program = ast.parse("\n".join(lines[start:-1]))  # the settings line, then the program
    assert any(isinstance(node, ast.AsyncFunctionDef) for node in program.body)
