"""Metrics, the session census and the event log, from fake spawners and snapshots."""

import json
import time
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from spawners.hub import events, metrics, observe
from spawners.hub.admin_page import page_rows, stop_path
from spawners.hub.census import session_row, session_rows
from spawners.session.request import SessionRequest
from spawners.slurm.jobs import SlurmJob
from spawners.slurm.queue import Snapshot


def _job(job_id, state="RUNNING", reason="None", partition="gpu", host="c01", **kw):
    now = int(time.time())
    fields = dict(
        job_id=job_id,
        name="factorylab",
        user="demo01",
        state=state,
        reason=reason,
        partition=partition,
        batch_host=host if state == "RUNNING" else "",
        nodes=host,
        exit_code=None,
        submit_time=now - 30,
        start_time=now - 10 if state == "RUNNING" else now + 600,
        end_time=now + 3600,
        time_limit_minutes=60,
        standard_output="",
    )
    fields.update(kw)
    return SlurmJob(**fields)


def _session(job_id, gpus=1, profile="gpu-small", idle=0.0, user="demo01", name=""):
    request = SessionRequest("gpu", "pytorch", gpus, "h100" if gpus else None, 2, 4096, 3600)
    request = SessionRequest(**{**request.__dict__, "profile": profile})
    return SimpleNamespace(
        job_id=job_id,
        session_request=request,
        kernel_activity=time.time() - idle if idle else 0.0,
        submitted_at=int(time.time()) - 30,
        user=SimpleNamespace(name=user),
        name=name,
    )


def _user(name, **servers):
    spawners = {key: SimpleNamespace(slurm_session=lambda s=s: s) for key, s in servers.items()}
    return SimpleNamespace(name=name, spawners=spawners)


@pytest.fixture
def snapshot():
    jobs = {
        "11": _job("11"),
        "12": _job("12", host="c03"),
        "13": _job("13", state="PENDING", reason="Resources"),
    }
    return Snapshot(
        jobs=jobs, taken_at=time.monotonic(), taken_wall=time.time(), pending_order={"gpu": ["13"]}
    )


def _scrape(rows, monitor=None):
    registry = CollectorRegistry()
    registry.register(metrics.SnapshotCollector(lambda: rows, lambda: monitor))
    return generate_latest(registry).decode()


def test_gauges_count_sessions_gpus_and_idle_gpus_without_naming_anyone(snapshot):
    users = [
        _user("demo01", **{"": _session("11", gpus=2, idle=600)}),
        _user("demo02", **{"big": _session("12", gpus=1, idle=30, user="demo02", name="big")}),
        _user("demo03", **{"": _session("13", gpus=4, user="demo03")}),
    ]
    rows = list(session_rows(users, snapshot))
    started = []
    monitor = SimpleNamespace(
        snapshot=snapshot, healthy=True, ensure_running=lambda: started.append(1)
    )
    text = _scrape(rows, monitor)
    assert started, "a scrape starts the monitor's refresh loop (after a hub restart)"
    assert 'factorylab_sessions{partition="gpu",profile="gpu-small",state="running"} 2.0' in text
    assert 'factorylab_sessions{partition="gpu",profile="gpu-small",state="pending"} 1.0' in text
    assert 'factorylab_pending_sessions{reason="Resources"} 1.0' in text
    assert 'factorylab_pending_sessions{reason="Priority"} 0.0' in text  # always there
    assert 'factorylab_gpus_held{gpu_type="h100",partition="gpu"} 3.0' in text
    assert 'factorylab_gpus_idle{partition="gpu"} 2.0' in text
    assert "factorylab_scheduler_up 1.0" in text
    assert "demo0" not in text and '"11"' not in text
    for line in text.splitlines():
        if line.startswith("# HELP factorylab_"):
            assert len(line.split(" ", 3)[3]) > 20, line


def test_scheduler_down_reads_zero_and_not_asked_yet_reads_nothing():
    def monitor(taken_wall, healthy):
        snapshot = Snapshot(taken_wall=taken_wall)
        return SimpleNamespace(snapshot=snapshot, healthy=healthy, ensure_running=lambda: None)

    for quiet in (None, monitor(0.0, True)):
        text = _scrape([], quiet)
        assert "\nfactorylab_scheduler_up " not in text
        assert "\nfactorylab_queue_snapshot_age_seconds " not in text
    text = _scrape([], monitor(time.time() - 42, False))
    assert "factorylab_scheduler_up 0.0" in text
    age = float(text.split("\nfactorylab_queue_snapshot_age_seconds ")[1].split()[0])
    assert 41 < age < 60
    assert "factorylab_scheduler_up 1.0" in _scrape([], monitor(time.time(), True))


def test_census_rows_say_where_and_how_long(snapshot):
    row = session_row("demo01", "", _session("11", idle=90), snapshot)
    assert (row.state, row.node, row.partition, row.profile) == (
        "running",
        "c01",
        "gpu",
        "gpu-small",
    )
    assert 3500 < row.time_left_seconds <= 3600 and 89 <= row.idle_seconds < 100
    pending = session_row("demo03", "x", _session("13"), snapshot)
    assert (pending.state, pending.reason, pending.queue_position, pending.node) == (
        "pending",
        "Resources",
        1,
        "",
    )
    gone = session_row("demo04", "", _session("99"), snapshot)
    assert gone.state == "unknown"
    holding, waiting = page_rows([row, pending, gone])
    assert [r.job_id for r in waiting] == ["13"] and {r.job_id for r in holding} == {"11", "99"}
    assert stop_path(row) == "users/demo01/server"
    assert stop_path(pending) == "users/demo03/servers/x"


def _value(counter, *labels):
    return counter.labels(*labels)._value.get()


def test_observe_counts_and_logs_a_session_life(tmp_path):
    path = tmp_path / "events.log"
    path.touch()
    assert events.configure(str(path)) is None
    session = _session("21")
    session.job_id = "21"
    before_wait = metrics.SPAWN_QUEUE_WAIT.labels("gpu", "gpu-small")._sum.get()
    observe.submitted(session)
    observe.job_seen(session, _job("21", state="PENDING", reason="Priority"))
    observe.job_seen(session, _job("21", state="PENDING", reason="Priority"))  # unchanged
    observe.job_seen(session, _job("21", state="PENDING", reason="Resources"))
    observe.job_seen(session, _job("21"))
    observe.ready(session, _job("21"))
    culls = _value(metrics.CULLS, "idle")
    observe.culled(session, 3600.4)
    observe.stopped(session, "requested")
    observe.stopped(session, "completed")  # the poll notices too: still one line
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["event"] for line in lines] == [
        "submitted",
        "pending_reason_changed",
        "pending_reason_changed",
        "running",
        "ready",
        "culled",
        "stopped",
    ]
    assert [line.get("reason") for line in lines[1:3]] == ["Priority", "Resources"]
    assert lines[-1]["cause"] == "culled" and lines[4]["node"] == "c01"
    assert all(line["user"] == "demo01" and line["job"] == "21" for line in lines)
    assert all(line["seconds"] >= 29 for line in lines)
    assert _value(metrics.CULLS, "idle") == culls + 1
    assert metrics.SPAWN_QUEUE_WAIT.labels("gpu", "gpu-small")._sum.get() == before_wait + 20


def test_failures_refusals_and_extensions_are_counted_under_bounded_labels(tmp_path):
    (tmp_path / "events.log").touch()
    assert events.configure(str(tmp_path / "events.log")) is None
    session = _session("31")
    failures = _value(metrics.SPAWN_FAILURES, "queue-timeout")
    other = _value(metrics.SPAWN_FAILURES, "error")
    observe.failed(session, "queue-timeout", "Your session waited too long.")
    observe.failed(session, "something-new", "Boom.")
    assert _value(metrics.SPAWN_FAILURES, "queue-timeout") == failures + 1
    assert _value(metrics.SPAWN_FAILURES, "error") == other + 1
    assert events.recent_failures[-2].message == "Your session waited too long."
    gpus, odd = _value(metrics.REFUSALS, "gpus"), _value(metrics.REFUSALS, "other")
    observe.refused("gpus")
    observe.refused("'; DROP TABLE")
    assert (_value(metrics.REFUSALS, "gpus"), _value(metrics.REFUSALS, "other")) == (
        gpus + 1,
        odd + 1,
    )
    ok = _value(metrics.EXTENSIONS, "ok")
    observe.extended(session, "ok", 1800)
    assert _value(metrics.EXTENSIONS, "ok") == ok + 1
    logged = [
        json.loads(line)["event"] for line in (tmp_path / "events.log").read_text().splitlines()
    ]
    assert logged == ["failed", "failed", "extended"]


def test_the_event_log_rotates_within_the_files_it_was_given_and_follows_no_link(tmp_path):
    log = tmp_path / "e.log"
    for name in ("e.log", "e.log.1", "e.log.2"):
        (tmp_path / name).touch()
    assert events.configure(str(log), max_bytes=400, backups=5) is None
    for number in range(20):
        events.record("submitted", user="demo01", server="", job=str(number), node=None, seconds=0)
    # no file was created: .3 to .5 did not exist, so two backups hold the older lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.log", "e.log.1", "e.log.2"]
    jobs = [
        [json.loads(line)["job"] for line in (tmp_path / name).read_text().splitlines()]
        for name in ("e.log.2", "e.log.1", "e.log")
    ]
    flat = [int(job) for chunk in jobs for job in chunk]
    assert flat == sorted(flat) and flat[-1] == 19 and all(jobs), jobs
    # a missing file, or a link in its place, is refused with a sentence; nothing is created
    problem = events.configure(str(tmp_path / "missing.log"))
    assert "missing.log cannot be opened" in problem and "make up creates it" in problem
    assert not (tmp_path / "missing.log").exists()
    (tmp_path / "link.log").symlink_to(tmp_path / "e.log.1")
    assert "cannot be opened" in events.configure(str(tmp_path / "link.log"))
    with pytest.raises(ValueError):
        events.record("exploded")


def test_a_rotation_that_fails_keeps_every_event_and_stops_rotating(tmp_path, monkeypatch):
    for name in ("e.log", "e.log.1"):
        (tmp_path / name).touch()
    assert events.configure(str(tmp_path / "e.log"), max_bytes=300, backups=1) is None

    def disk_full(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(events, "_copy_over", disk_full)
    for number in range(10):
        events.record("submitted", user="demo01", server="", job=str(number), node=None, seconds=0)
    logged = [json.loads(line)["job"] for line in (tmp_path / "e.log").read_text().splitlines()]
    assert logged == [str(number) for number in range(10)]
    assert (tmp_path / "e.log.1").read_text() == ""


def test_a_broken_metric_or_observer_never_breaks_a_session(monkeypatch, caplog):
    session = _session("41")

    class Broken:
        def labels(self, *args):
            raise RuntimeError("registry gone")

    monkeypatch.setattr(metrics, "SPAWN_FAILURES", Broken())
    monkeypatch.setattr(metrics, "SPAWN_QUEUE_WAIT", Broken())
    observe.failed(session, "queue-timeout", "x")  # logged, not raised
    observe.ready(session, _job("41"))
    assert "could not record failed" in caplog.text and "could not record ready" in caplog.text


def test_a_failed_start_is_not_also_a_stop_and_a_cull_counts_once(tmp_path):
    (tmp_path / "e.log").touch()
    assert events.configure(str(tmp_path / "e.log")) is None
    session = _session("51")
    observe.starting(session)
    observe.failed(session, "server-start-timeout", "too slow")
    observe.stopped(session, "requested")  # JupyterHub stops a failed spawn: no second end
    culled = _value(metrics.CULLS, "idle")
    other = _session("52")
    observe.culled(other, 4000)
    observe.culled(other, 4010)
    assert _value(metrics.CULLS, "idle") == culled + 1
    logged = [json.loads(line) for line in (tmp_path / "e.log").read_text().splitlines()]
    assert [(line["event"], line["job"]) for line in logged] == [
        ("failed", "51"),
        ("culled", "52"),
    ]


def test_slurm_commands_are_counted_by_verb_with_unknown_verbs_folded():
    ok = _value(metrics.SLURM_COMMANDS, "squeue", "ok")
    metrics.count_slurm_command("squeue", "ok", 0.02)
    metrics.count_slurm_command("rm", "ok", 0.02)
    assert _value(metrics.SLURM_COMMANDS, "squeue", "ok") == ok + 1
    assert _value(metrics.SLURM_COMMANDS, "other", "ok") >= 1
