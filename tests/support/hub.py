"""Helpers to drive the real hub through its REST API and the proxy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import requests
import websocket
import yaml

HUB_URL = os.environ.get("FACTORYLAB_URL", "http://127.0.0.1:8000")
ADMIN_TOKEN_FILE = Path("/etc/factorylab/admin-api.token")
HUB_LOG = Path("/var/log/factorylab/hub.log")  # the demo hub's log (ansible/roles/hub)
SITE_FILE = Path(__file__).resolve().parents[2] / "hub_config" / "site.local.yaml"


class Hub:
    """A client of the hub's REST API holding the admin service token."""

    def __init__(self, token: str, url: str = HUB_URL, verify: str | bool = True):
        self.url = url
        self.verify = verify  # a CA file for a hub with a self-signed certificate
        self.http = requests.Session()
        self.http.verify = verify
        self.http.headers["Authorization"] = f"token {token}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("verify", self.verify)  # explicit: REQUESTS_CA_BUNDLE would win
        return self.http.request(method, f"{self.url}/hub/api{path}", timeout=60, **kwargs)

    def wait_until_up(self, timeout: float = 60) -> None:
        """Wait until the hub answers through the proxy (after a restart)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                response = requests.get(f"{self.url}/hub/api/", timeout=5, verify=self.verify)
                if response.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the hub did not answer within {timeout} s")

    def ensure_user(self, name: str) -> None:
        response = self.api("POST", f"/users/{name}")
        assert response.status_code in (201, 409), response.text

    def server(self, name: str, server_name: str = "") -> dict | None:
        return self.api("GET", f"/users/{name}").json()["servers"].get(server_name)

    def spawn(self, name: str, options: dict | None = None) -> requests.Response:
        self.ensure_user(name)
        return self.api("POST", f"/users/{name}/server", json=options or {})

    def wait_ready(self, name: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{name}").json()
            server = model["servers"].get("")
            if server and server["ready"]:
                return server
            if not server and not model.get("pending"):
                raise AssertionError(f"{name}'s server is gone: {model}")
            time.sleep(0.2)
        raise AssertionError(f"{name}'s server was not ready within {timeout} s")

    def start(self, name: str, options: dict | None = None) -> dict:
        response = self.spawn(name, options)
        assert response.status_code in (201, 202), response.text
        return self.wait_ready(name)

    def stop(self, name: str, timeout: float = 60) -> None:
        response = self.api("DELETE", f"/users/{name}/server")
        if response.status_code == 404:  # the hub does not know this user yet
            return
        assert response.status_code in (202, 204, 400), response.text
        deadline = time.monotonic() + timeout
        while self.server(name) and time.monotonic() < deadline:
            time.sleep(0.2)

    def user_token(self, name: str) -> str:
        self.ensure_user(name)
        response = self.api("POST", f"/users/{name}/tokens", json={"note": "factorylab tests"})
        assert response.status_code == 201, response.text
        return response.json()["token"]


def spawn_events(hub: Hub, user: str, timeout: float = 120) -> list[dict]:
    """The spawn page's progress events for ``user``, until the spawn ends.

    ``timeout`` bounds the whole wait: the hub's keepalives (every few seconds) would
    otherwise keep a read timeout from ever firing.
    """
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    url = f"{hub.url}/hub/api/users/{user}/server/progress"
    with hub.http.get(url, stream=True, timeout=min(timeout, 30)) as stream:
        stream.raise_for_status()
        for line in stream.iter_lines(decode_unicode=True):  # keepalives are empty lines
            if line and line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("ready") or events[-1].get("failed"):
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{user}'s spawn did not end within {timeout} s")
    return events


def spawn_failure(hub: Hub, user: str, response: requests.Response) -> str:
    """Why a spawn failed: at once (an error answer), or later on its progress stream.

    JupyterHub answers 202 when a spawn takes longer than 10 s; the spawn page then
    learns the outcome from the progress stream, and so does this.
    """
    if response.status_code == 202:
        last = spawn_events(hub, user)[-1]
        assert last.get("failed"), last
        return last["message"]
    assert response.status_code >= 400, (response.status_code, response.text)
    return response.json().get("message", "")


def proxy_routes() -> dict:
    """The proxy's routing table, from its API (root reads the proxy's token)."""
    token = Path("/etc/factorylab/proxy.token").read_text().strip()
    return requests.get(
        "http://127.0.0.1:8001/api/routes", headers={"Authorization": f"token {token}"}, timeout=10
    ).json()


def wait_gone(hub: Hub, user: str, timeout: float) -> bool:
    """Wait until the hub no longer lists ``user``'s server; whether it went in time."""
    deadline = time.monotonic() + timeout
    while hub.server(user) and time.monotonic() < deadline:
        time.sleep(1)
    return hub.server(user) is None


def next_page_says(user: str, words: str) -> None:
    """The user's next page (a login, then their Lab's URL) tells why the session ended."""
    browser, response = login(user, demo_password())
    assert response.status_code == 302
    page = browser.get(f"{HUB_URL}/hub/user/{user}/lab", timeout=30)
    assert page.status_code == 424, page.status_code
    assert 'id="factorylab-ended"' in page.text and words in page.text, page.text[-1500:]


def demo_password() -> str:
    """The demo users' password, from the site file `make up` deploys."""
    return yaml.safe_load(SITE_FILE.read_text())["demo"]["password"]


def demo_admin() -> tuple[str, str]:
    """The demo's hub admin and its own password (root-only file `make up` writes)."""
    prefix = yaml.safe_load(SITE_FILE.read_text())["demo"]["prefix"]
    return f"{prefix}-admin", Path("/etc/factorylab/demo-admin.password").read_text().strip()


def demo_users() -> list[str]:
    """Every demo account `make up` creates: ``demo01`` … ``demo40`` (ansible/roles/users)."""
    demo = yaml.safe_load(SITE_FILE.read_text())["demo"]
    assert demo.get("enabled"), "the demo site file has no demo users"
    prefix, count = demo.get("prefix", "demo"), int(demo.get("count", 40))
    width = max(2, len(str(count)))
    return [f"{prefix}{n:0{width}d}" for n in range(1, count + 1)]


def hub_log_mark() -> int:
    """Where the hub's log ends now; pass it to :func:`hub_log_since`."""
    return HUB_LOG.stat().st_size


def hub_log_since(mark: int, wanted: str = "", timeout: float = 10) -> str:
    """What the hub logged after ``mark``, once it holds ``wanted`` (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while True:
        with HUB_LOG.open("rb") as log:
            if log.seek(0, os.SEEK_END) < mark:  # truncated since: a new log
                mark = 0
            log.seek(mark)
            text = log.read().decode(errors="replace")
        if wanted in text or time.monotonic() >= deadline:
            return text
        time.sleep(0.3)


def login(user: str, password: str) -> tuple[requests.Session, requests.Response]:
    """Log in through the hub's login form, as a browser would."""
    browser = requests.Session()
    page = browser.get(f"{HUB_URL}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    response = browser.post(
        f"{HUB_URL}/hub/login",
        data={"username": user, "password": password, "_xsrf": xsrf},
        allow_redirects=False,
        timeout=30,
    )
    return browser, response


def proxied(hub: Hub, user: str, path: str, token: str, method: str = "GET", **kwargs):
    """A request to the user's server through the public proxy."""
    url = f"{hub.url}/user/{user}/{path.lstrip('/')}"
    headers = {"Authorization": f"token {token}"}
    kwargs.setdefault("verify", hub.verify)
    kwargs.setdefault("timeout", 30)
    return requests.request(method, url, headers=headers, **kwargs)


def lab_page_config(hub: Hub, user: str, token: str) -> dict:
    """The page configuration JupyterLab's page carries (``jupyter-config-data``)."""
    page = proxied(hub, user, "lab", token)
    page.raise_for_status()
    found = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page.text, re.S
    )
    assert found, "the Lab page carries no jupyter-config-data"
    return json.loads(found.group(1))


def send_execute(socket, code: str, user: str = "test") -> str:
    """Send an execute_request for ``code`` over a kernel's websocket; return its msg_id."""
    msg_id = uuid.uuid4().hex
    socket.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": user,
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "content": {"code": code, "silent": False, "store_history": False},
                "channel": "shell",
            }
        )
    )
    return msg_id


def run_in_kernel(
    hub: Hub, user: str, token: str, code: str, timeout: float = 60, kernel_id: str | None = None
) -> str:
    """Execute ``code`` in a kernel of the user's session; return its stdout.

    Without ``kernel_id`` a new kernel runs it and is deleted afterwards; with one, that
    kernel runs it and stays.
    """
    keep = kernel_id is not None
    if kernel_id is None:
        response = proxied(hub, user, "api/kernels", token, method="POST", json={"name": "python3"})
        assert response.status_code == 201, response.text
        kernel_id = response.json()["id"]
    ws_url = hub.url.replace("http", "ws", 1) + f"/user/{user}/api/kernels/{kernel_id}/channels"
    socket = websocket.create_connection(
        ws_url,
        header=[f"Authorization: token {token}"],
        timeout=timeout,
        sslopt={"ca_certs": hub.verify} if isinstance(hub.verify, str) else None,
    )
    msg_id = send_execute(socket, code, user)
    output = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = json.loads(socket.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "stream":
                output.append(message["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(message["content"]["traceback"]))
            elif kind == "status" and message["content"]["execution_state"] == "idle":
                return "".join(output)
    finally:
        socket.close()
        if not keep:
            proxied(hub, user, f"api/kernels/{kernel_id}", token, method="DELETE")
    raise AssertionError("the kernel did not finish in time")


def open_kernel(hub: Hub, user: str, token: str, name: str, timeout: float = 180) -> str:
    """Open a kernel ``name`` in the user's session; its id once it runs.

    Sessions have pending kernels: the request is answered at once, and a connection to
    the kernel waits until it runs, as the Lab's does (a kernel job waits in the queue).
    """
    response = proxied(hub, user, "api/kernels", token, method="POST", json={"name": name})
    assert response.status_code == 201, response.text[-2000:]
    kernel_id = response.json()["id"]
    url = hub.url.replace("http", "ws", 1) + f"/user/{user}/api/kernels/{kernel_id}/channels"
    try:
        websocket.create_connection(
            url,
            header=[f"Authorization: token {token}"],
            timeout=timeout,
            sslopt={"ca_certs": hub.verify} if isinstance(hub.verify, str) else None,
        ).close()
    except websocket.WebSocketException as exc:
        model = proxied(hub, user, f"api/kernels/{kernel_id}", token).text
        raise AssertionError(f"the kernel did not start ({exc}): {model}") from exc
    return kernel_id


_EXECUTE_NOTEBOOK = """
import json, os, subprocess, sys
path = os.path.expanduser({path!r})
result = subprocess.run(
    [sys.executable, "-m", "jupyter", "execute", "--inplace", "--timeout=600", path],
    capture_output=True, text=True, cwd=os.path.dirname(path),
)
print(json.dumps({{"returncode": result.returncode, "stderr": result.stderr[-4000:]}}))
"""


def execute_notebook(hub: Hub, user: str, token: str, path: str, timeout: float = 420) -> dict:
    """Run ``~/path`` with nbclient inside the user's session, in place.

    Returns ``{"returncode", "stderr"}``; the executed notebook replaces the file.
    """
    code = _EXECUTE_NOTEBOOK.format(path=f"~/{path}")
    return json.loads(run_in_kernel(hub, user, token, code, timeout=timeout))


def sbatch_as(user: str, *options: str, script: str | None = None) -> str:
    """Submit a job directly (not through the hub) as ``user``; return its id.

    Without ``script``, the job sleeps for ten minutes: a placeholder that holds resources.
    """
    argv = ["runuser", "-u", user, "--", "/usr/bin/sbatch", "--parsable", "--output=/dev/null"]
    if script is None:
        argv += ["--mem=100M", "--time=10", *options, "--wrap", "sleep 600"]
    else:
        argv += list(options)
    result = subprocess.run(argv, input=script, capture_output=True, text=True, check=True, cwd="/")
    return result.stdout.strip()


def squeue_active(job_filter: list[str]) -> str:
    """``squeue -h`` (active jobs only) with the given filter arguments."""
    return subprocess.run(
        ["squeue", "-h", *job_filter], capture_output=True, text=True, check=True
    ).stdout.strip()


def sdiag_count(message_type: str) -> int:
    """How many RPCs of ``message_type`` slurmctld has served (from sdiag)."""
    out = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    match = re.search(rf"^\s*{message_type}\s+\(\s*\d+\)\s+count:(\d+)", out, re.MULTILINE)
    return int(match.group(1)) if match else 0


def session_pid(user: str) -> int:
    """The pid of the user's jupyterhub-singleuser process."""
    out = subprocess.run(
        ["pgrep", "-u", user, "-f", "bin/jupyterhub-singleuser"], capture_output=True, text=True
    ).stdout.split()
    assert out, f"no jupyterhub-singleuser runs as {user}"
    return int(out[-1])


def process_env(pid: int) -> dict[str, str]:
    """The environment of a process (root only)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def job_id_of(user: str) -> str:
    """The id of the user's active FactoryLab job."""
    out = squeue_active(["-u", user, "-n", "factorylab", "-o", "%i"])
    assert out, f"{user} has no active FactoryLab job"
    return out.splitlines()[0]
