"""The in-job launcher, run for real against a fake server and a local hub API."""

import atexit
import contextlib
import json
import os
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from spawners.session.job import LAUNCHER_PARTS

TEMPLATES = Path(__file__).resolve().parents[3] / "spawners" / "session" / "templates"


def _joined_launcher() -> Path:
    """The launcher as the job script carries it: its parts joined, in one file."""
    folder = tempfile.mkdtemp(prefix="factorylab-launcher-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "session_launcher.py"
    path.write_text("".join((TEMPLATES / part).read_text() for part in LAUNCHER_PARTS))
    return path


LAUNCHER = _joined_launcher()

FAKE_SERVER = textwrap.dedent(
    """\
    #!{python}
    import os, signal, socket, sys, time, urllib.parse
    # like jupyterhub-singleuser: the port comes from JUPYTERHUB_SERVICE_URL
    port = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"]).port
    time.sleep(0.5)  # a slow start, like JupyterLab's imports
    sock = socket.socket(); sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port)); sock.listen()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))
    while True:
        conn, _ = sock.accept(); conn.close()
    """
)


class Hub:
    """A local stand-in for the hub API that checks the port is live when reported."""

    def __init__(self, status=201):
        self.reports = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    socket.create_connection(("127.0.0.1", body["port"]), timeout=1).close()
                    listening = True
                except (KeyError, OSError):
                    listening = False
                hub.reports.append((self.path, self.headers["Authorization"], body, listening))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hub/api"


@pytest.fixture
def fake_server(tmp_path):
    path = tmp_path / "jupyterhub-singleuser"
    path.write_text(FAKE_SERVER.format(python=sys.executable))
    path.chmod(0o755)
    return path


_LAUNCHED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    """Each launcher runs in a session of its own; the whole session goes after the test
    (the servers it started, and their children, included)."""
    yield
    while _LAUNCHED:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(_LAUNCHED.pop().pid, signal.SIGKILL)


def _launch(fake_server, hub, **extra_env):
    env = {
        "JUPYTERHUB_API_URL": hub.url,
        "JUPYTERHUB_API_TOKEN": "secret",
        "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:0/user/demo01/",
        "PATH": "/usr/bin:/bin",
        **extra_env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-I", "-", str(fake_server), "--debug"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,
    )
    _LAUNCHED.append(proc)
    return proc


def _launch_until_reported(server, hub, timeout: float = 10):
    """Start the launcher for ``server`` and wait for its first report to ``hub``."""
    proc = _launch(server, hub)
    proc.stdin.write(LAUNCHER.read_text())
    proc.stdin.close()
    deadline = time.monotonic() + timeout
    while not hub.reports and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def test_reports_the_port_only_once_the_server_listens(fake_server):
    hub = Hub()
    proc = _launch_until_reported(fake_server, hub)
    path, auth, body, listening = hub.reports[0]
    assert path == "/hub/api/factorylab/port" and auth == "token secret"
    assert set(body) == {"port"} and listening
    assert "--port" not in Path(f"/proc/{_server_pid(proc.pid)}/cmdline").read_text()
    proc.send_signal(signal.SIGTERM)  # passed on to the server, whose status is kept
    assert proc.wait(timeout=10) == 7
    hub.server.shutdown()


def _server_pid(launcher_pid: int) -> int:
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()
    return int(children[0])


SQUATTED_SERVER = textwrap.dedent(
    """\
    #!{python}
    import os, socket, subprocess, sys, time, urllib.parse
    port = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"]).port
    marker = {marker!r}
    if not os.path.exists(marker):
        # another user's process grabs the port first; JupyterLab (port_retries=0) exits
        open(marker, "w").write(str(port))
        subprocess.Popen([sys.executable, "-c", (
            "import socket, time; s = socket.socket(); "
            f"s.bind(('127.0.0.1', {{port}})); s.listen(); time.sleep(30)")])
        time.sleep(0.5)
        sys.exit("The port %d is already in use" % port)
    sock = socket.socket(); sock.bind(("127.0.0.1", port)); sock.listen()
    while True:
        conn, _ = sock.accept(); conn.close()
    """
)


def test_a_squatted_port_is_given_up_for_one_the_server_alone_holds(tmp_path):
    marker = tmp_path / "squatted-port"
    server = tmp_path / "jupyterhub-singleuser"
    server.write_text(SQUATTED_SERVER.format(python=sys.executable, marker=str(marker)))
    server.chmod(0o755)
    hub = Hub()
    proc = _launch_until_reported(server, hub, timeout=15)
    try:
        assert hub.reports, proc.stdout.read() if proc.poll() is not None else "no report"
        _, _, body, listening = hub.reports[0]
        assert body["port"] != int(marker.read_text()) and listening
    finally:
        hub.server.shutdown()


def test_a_hub_refusal_stops_the_server(fake_server):
    hub = Hub(status=400)
    proc = _launch(fake_server, hub)
    _, err = proc.communicate(LAUNCHER.read_text(), timeout=20)
    assert proc.returncode == 1
    assert "could not report the session port" in err
    hub.server.shutdown()


def test_writes_the_sessions_dask_config(fake_server, tmp_path):
    hub = Hub()
    dask_dir = tmp_path / "servers" / "default" / "dask"
    config = {
        "jobqueue": {
            "slurm": {
                "job-extra-directives": ["--deadline=@SESSION_END@"],
                "scheduler-options": {"host": "@NODE_ADDRESS@"},
            }
        }
    }
    proc = _launch(
        fake_server,
        hub,
        DASK_CONFIG=str(dask_dir),
        FACTORYLAB_DASK_CONFIG=json.dumps(config),
        FACTORYLAB_WALLTIME_SECONDS="3600",
        FACTORYLAB_DASK_DEADLINE_MARGIN="60",
    )
    started = time.time()
    proc.stdin.write(LAUNCHER.read_text())
    proc.stdin.close()
    deadline = time.monotonic() + 10
    while not hub.reports and time.monotonic() < deadline:
        time.sleep(0.05)
    written = json.loads((dask_dir / "factorylab-session.yaml").read_text())
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    hub.server.shutdown()
    slurm = written["jobqueue"]["slurm"]
    end = time.mktime(time.strptime(slurm["job-extra-directives"][0][11:], "%Y-%m-%dT%H:%M:%S"))
    # a minute before the session's end, never after it
    assert started + 3600 - 62 <= end <= started + 3600 - 59
    host = slurm["scheduler-options"]["host"]
    socket.inet_aton(host)  # a resolved IPv4 address, not the placeholder
    assert oct(dask_dir.stat().st_mode & 0o777) == "0o700"


def _deliver(tmp_path, source, target):
    env = {
        "FACTORYLAB_NOTEBOOKS_SOURCE": str(source),
        "FACTORYLAB_NOTEBOOKS_TARGET": str(target),
        "PATH": "/usr/bin:/bin",
    }
    code = LAUNCHER.read_text().replace('if __name__ == "__main__":\n    main()', "")
    code += "\ndeliver_notebooks()\n"
    subprocess.run([sys.executable, "-I", "-"], input=code, text=True, env=env, check=True)


def test_starter_notebooks_never_overwrite_the_users_files(tmp_path):
    source, target = tmp_path / "site", tmp_path / "home" / "factorylab-notebooks"
    (source / "climate").mkdir(parents=True)
    (source / "00-getting-started.ipynb").write_text("site v1")
    (source / "climate" / "l96.ipynb").write_text("site v1")
    _deliver(tmp_path, source, target)
    assert (target / "climate" / "l96.ipynb").read_text() == "site v1"
    # the user edits one and deletes the other; the site updates both and adds one
    (target / "00-getting-started.ipynb").write_text("my edits")
    (target / "climate" / "l96.ipynb").unlink()
    (source / "00-getting-started.ipynb").write_text("site v2")
    (source / "climate" / "l96.ipynb").write_text("site v2")
    (source / "new.ipynb").write_text("new")
    _deliver(tmp_path, source, target)
    assert (target / "00-getting-started.ipynb").read_text() == "my edits"
    assert not (target / "climate" / "l96.ipynb").exists()
    assert (target / "new.ipynb").read_text() == "new"


def test_writes_the_internal_ssl_files_private(tmp_path):
    certs = tmp_path / "servers" / "default" / "certs"
    files = {str(certs / "session.key"): "KEY\n", str(certs / "ca.crt"): "CA\n"}
    env = {"FACTORYLAB_TLS_FILES": json.dumps(files), "PATH": "/usr/bin:/bin"}
    code = LAUNCHER.read_text().replace('if __name__ == "__main__":\n    main()', "")
    code += "\nwrite_tls_files()\nimport os\nprint('FACTORYLAB_TLS_FILES' in os.environ)\n"
    done = subprocess.run(
        [sys.executable, "-I", "-"], input=code, text=True, env=env, check=True, capture_output=True
    )
    assert done.stdout.strip() == "False"  # popped: the server and kernels never see the PEMs
    assert (certs / "session.key").read_text() == "KEY\n"
    assert oct(certs.stat().st_mode & 0o777) == "0o700"
    for name in ("session.key", "ca.crt"):
        assert oct((certs / name).stat().st_mode & 0o777) == "0o600"


def _dask_session(site, tmp_path):
    """The hub's Dask configuration for a session in ``tmp_path/home``, and its folders."""
    from spawners.session.dask import session_dask_config
    from spawners.session.paths import session_dir
    from spawners.session.request import parse_request

    home = tmp_path / "home"
    config = session_dask_config(site, parse_request({}, site), "demo01", "", str(home))
    session = Path(session_dir(str(home), ""))
    session.mkdir(parents=True)
    env = {
        "FACTORYLAB_DASK_CONFIG": json.dumps(config),
        "DASK_CONFIG": str(session / "dask"),
        "FACTORYLAB_WALLTIME_SECONDS": "3600",
        "PATH": "/usr/bin:/bin",
    }
    return env, session


def _write_dask_files(env):
    """Run the launcher's Dask steps as the job does (``-I``, the image's interpreter)."""
    code = LAUNCHER.read_text().replace('if __name__ == "__main__":\n    main()', "")
    code += "\nwrite_dask_tls()\nwrite_dask_config(time.time())\n"
    return subprocess.run(
        [sys.executable, "-I", "-"], input=code, text=True, env=env, capture_output=True
    )


def test_dask_tls_files_are_private_and_new_for_each_job(site, tmp_path):
    env, session = _dask_session(site, tmp_path)
    folder = session / "dask-tls"
    first = _write_dask_files(env)
    assert first.returncode == 0, first.stderr
    assert f"Dask TLS certificates (a CA made for this job) in {folder}" in first.stdout
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "session.crt", "session.key"]
    for path in folder.iterdir():
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert b"PRIVATE KEY" in (folder / "session.key").read_bytes()
    written = json.loads((session / "dask" / "factorylab-session.yaml").read_text())
    assert written["distributed"]["comm"]["tls"]["ca-file"] == str(folder / "ca.crt")
    before = {name: (folder / name).read_bytes() for name in ("ca.crt", "session.key")}
    (folder / "ca.crt").chmod(0o644)
    folder.chmod(0o755)
    assert _write_dask_files(env).returncode == 0  # the next job: a new CA and key
    assert all((folder / name).read_bytes() != pem for name, pem in before.items())
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct((folder / "ca.crt").stat().st_mode & 0o777) == "0o600"


def test_dask_tls_refuses_a_symlinked_folder(site, tmp_path):
    env, session = _dask_session(site, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (session / "dask-tls").symlink_to(elsewhere)
    (session / "dask").mkdir()
    stale = session / "dask" / "factorylab-session.yaml"
    stale.write_text("{}\n")  # the previous job's
    done = _write_dask_files(env)
    assert done.returncode != 0 and "is a symbolic link" in done.stderr
    assert list(elsewhere.iterdir()) == []
    assert not stale.exists()  # no configuration naming files that are not this job's


def test_dask_tls_refuses_a_folder_of_another_user(site, tmp_path, monkeypatch):
    env, session = _dask_session(site, tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    launcher = runpy.run_path(str(LAUNCHER))
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)  # the folder is not "ours"
    with pytest.raises(OSError, match="another user's"):
        launcher["write_dask_tls"]()
    assert list((session / "dask-tls").iterdir()) == []


def test_dask_tls_files_replace_links_never_write_through_them(site, tmp_path):
    env, session = _dask_session(site, tmp_path)
    folder = session / "dask-tls"
    folder.mkdir(mode=0o755)
    victim = tmp_path / "victim"
    victim.write_text("not a key\n")
    (folder / "session.key").symlink_to(victim)
    (folder / ".session.key.tmp").symlink_to(victim)
    assert _write_dask_files(env).returncode == 0
    assert victim.read_text() == "not a key\n"
    assert not (folder / "session.key").is_symlink()
    assert oct((folder / "session.key").stat().st_mode & 0o777) == "0o600"


def test_the_launcher_keeps_no_tls_library_for_the_session(site, fake_server, tmp_path):
    """The certificates and the port report are made in children that exit: what they
    load (cryptography, ssl) does not stay in the launcher's memory for the session."""
    env, session = _dask_session(site, tmp_path)
    env.pop("PATH")
    hub = Hub()
    proc = _launch(fake_server, hub, **env)
    proc.stdin.write(LAUNCHER.read_text())
    proc.stdin.close()
    deadline = time.monotonic() + 15
    while not hub.reports and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert hub.reports, proc.stdout.read() if proc.poll() is not None else "no report"
        assert (session / "dask-tls" / "ca.crt").exists()
        assert (session / "dask" / "factorylab-session.yaml").exists()
        mapped = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "cryptography" not in mapped and "_ssl" not in mapped
        modules = set(Path(f"/proc/{proc.pid}/cmdline").read_text().split("\0"))
        assert "-I" in modules  # still the launcher itself, not an exec'd program
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        hub.server.shutdown()


def test_a_failed_step_in_a_child_is_reported_with_its_message(tmp_path):
    launcher = runpy.run_path(str(LAUNCHER))

    def refuse():
        raise OSError("the folder is another user's")

    with pytest.raises(launcher["StepFailed"], match="another user's"):
        launcher["in_child"](refuse)
    launcher["in_child"](lambda: None)  # a step that succeeds raises nothing
    # a child that dies without a word still fails the step, and never returns here
    with pytest.raises(launcher["StepFailed"], match="status -9"):
        launcher["in_child"](lambda: os.kill(os.getpid(), signal.SIGKILL))


def test_the_joined_launcher_names_nothing_undefined():
    """Its parts are linted one by one (F821 is off for the second); joined, every name
    one part uses must be defined."""
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "check", "--isolated", "--select=F821", str(LAUNCHER)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
