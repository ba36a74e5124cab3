"""GPU notebook kernels as Slurm jobs of their own, opened from a CPU session (issue 17).

Everything here goes through the public proxy into a real session, whose
``factorylab-slurm`` provisioner submits the kernel's job as the user; the kernel runs
on a GPU node under CurveZMQ. The attack is made as another demo user, on the
kernel's own node.
"""

import json
import os
import stat
import subprocess
import textwrap
import time
import uuid

import pytest
import websocket

from ..support.hub import open_kernel as start_kernel
from ..support.hub import proxied, run_in_kernel, send_execute, session_pid, squeue_active
from ..support.nodes import run_on_node
from .conftest import take_gpus

USER, OTHER = "demo11", "demo12"
SPEC = "slurm-pytorch-gpu"
KERNEL_JOB = "factorylab-kernel-"  # and the session's job id
START_TIMEOUT = 180


def kernel_jobs(user: str = USER) -> list[list[str]]:
    """``[job id, state, node, partition]`` of the user's kernel jobs."""
    out = squeue_active(["-u", user, "-o", "%i|%T|%N|%P|%j"])  # a waiting job has no node
    rows = [line.split("|") for line in out.splitlines()]
    return [row[:4] for row in rows if row[4].startswith(KERNEL_JOB)]


def gone_within(seconds: float) -> float | None:
    """Seconds until no kernel job of the user is left, or None."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not kernel_jobs():
            return time.monotonic() - started
        time.sleep(0.25)
    return None


def start_lab(hub) -> str:
    """A Lab of USER (a fresh one: the Lab profile, on the demo's shared-core partition);
    its token."""
    hub.stop(USER)
    hub.start(USER, {"profile": "lab"})
    return hub.user_token(USER)


@pytest.fixture(scope="module")
def lab(hub):
    """A CPU session of USER for the whole module, and its token."""
    yield start_lab(hub)
    hub.stop(USER)


def open_kernel(hub, token, user: str = USER, spec: str = SPEC) -> str:
    """Open a kernel (a pending one at first); its id once it runs."""
    return start_kernel(hub, user, token, spec, START_TIMEOUT)


def test_the_launcher_lists_the_kernel_job(hub, lab):
    specs = proxied(hub, USER, "api/kernelspecs", lab).json()["kernelspecs"]
    assert specs[SPEC]["spec"]["display_name"] == "PyTorch · 1 GPU (Slurm job)"
    # the Lab runs on the partition whose cores Labs share
    [lab_job] = [row for row in squeue_active(["-u", USER, "-o", "%j %P"]).splitlines()]
    assert lab_job == "factorylab lab"
    partition = subprocess.run(
        ["scontrol", "-o", "show", "partition", "lab"], capture_output=True, text=True, check=True
    ).stdout
    assert "OverSubscribe=FORCE:4" in partition


def test_a_gpu_kernel_is_a_job_of_its_own_with_its_gpu(hub, lab):
    # the Lab's node has no free GPU: the kernel runs on another node, across the network
    [lab_node] = squeue_active(["-u", USER, "-n", "factorylab", "-o", "%N"]).split()
    held = take_gpus([lab_node])
    try:
        kernel_id = open_kernel(hub, lab)
    finally:
        subprocess.run(["scancel", *held], check=False)
    try:
        [(job_id, state, node, partition)] = kernel_jobs()
        assert (state, partition) == ("RUNNING", "gpu")
        assert node != lab_node
        code = "import os, socket; print(os.environ['CUDA_VISIBLE_DEVICES'], socket.gethostname())"
        out = run_in_kernel(hub, USER, lab, code, kernel_id=kernel_id).split()
        assert out[0] != "" and out[1] == node
        assert_private_files(kernel_id)

        # an interrupt stops a long cell within 2 s
        elapsed = interrupt_a_sleep(hub, lab, kernel_id)
        assert elapsed < 2.0, f"the interrupt took {elapsed:.1f} s"

        # a restart is a fresh kernel in the same job: the GPU stays
        restarted = proxied(hub, USER, f"api/kernels/{kernel_id}/restart", lab, method="POST")
        assert restarted.status_code == 200, restarted.text
        assert [row[0] for row in kernel_jobs()] == [job_id]
        assert run_in_kernel(hub, USER, lab, "print(41 + 1)", kernel_id=kernel_id).strip() == "42"

        # another user on the kernel's node reads nothing and runs nothing
        attack_as_another_user(node, hub, lab, kernel_id)

        # the Lab warns before the job's end, which it reads here: Slurm's, and at least
        # a minute before the session's
        rows = proxied(hub, USER, "factorylab/kernels", lab).json()["kernels"]
        [ends_at] = [row["ends_at"] for row in rows if row["id"] == kernel_id]
        assert ends_at and abs(ends_at - slurm_end(job_id)) < 2
        [lab_job] = squeue_active(["-u", USER, "-n", "factorylab", "-o", "%i"]).split()
        assert ends_at <= slurm_end(lab_job) - 60
    finally:
        proxied(hub, USER, f"api/kernels/{kernel_id}", lab, method="DELETE")
    took = gone_within(10)
    assert took is not None, f"the kernel job outlived its shutdown: {kernel_jobs()}"


def slurm_end(job_id: str) -> float:
    """A job's end (``squeue %e``, local time), as epoch seconds."""
    return time.mktime(
        time.strptime(squeue_active(["-j", job_id, "-o", "%e"]), "%Y-%m-%dT%H:%M:%S")
    )


def interrupt_a_sleep(hub, token, kernel_id) -> float:
    """Start ``time.sleep(600)``, interrupt it, and time it until the kernel is idle."""
    url = hub.url.replace("http", "ws", 1) + f"/user/{USER}/api/kernels/{kernel_id}/channels"
    socket = websocket.create_connection(url, header=[f"Authorization: token {token}"], timeout=30)
    try:
        msg_id = send_execute(socket, "import time; time.sleep(600)", USER)
        while True:  # wait until it runs
            message = json.loads(socket.recv())
            if (
                message["parent_header"].get("msg_id") == msg_id
                and message["msg_type"] == "execute_input"
            ):
                break
        time.sleep(0.5)
        started = time.monotonic()
        response = proxied(hub, USER, f"api/kernels/{kernel_id}/interrupt", token, method="POST")
        assert response.status_code == 204, response.text
        while True:
            message = json.loads(socket.recv())
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                return time.monotonic() - started
    finally:
        socket.close()


ATTACK = textwrap.dedent(
    """
    import json, sys, time, zmq
    ip, iopub, shell, marker = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    context = zmq.Context()
    # a plain subscriber, and one that makes up a CurveZMQ server key
    plain = context.socket(zmq.SUB); plain.subscribe(b""); plain.connect(f"tcp://{ip}:{iopub}")
    guessed = context.socket(zmq.SUB); guessed.subscribe(b"")
    public, secret = zmq.curve_keypair()
    guessed.curve_serverkey = guessed.curve_publickey = public
    guessed.curve_secretkey = secret
    guessed.connect(f"tcp://{ip}:{iopub}")
    # an execute request, unsigned, that would leave a file behind
    dealer = context.socket(zmq.DEALER); dealer.connect(f"tcp://{ip}:{shell}")
    header = json.dumps({"msg_id": "x", "msg_type": "execute_request", "session": "x",
                         "username": "x", "version": "5.3"}).encode()
    code = json.dumps({"code": f"open({marker!r}, 'w').write('pwned')", "silent": False}).encode()
    dealer.send_multipart([b"<IDS|MSG>", b"", header, b"{}", b"{}", code])
    poller = zmq.Poller()
    for sock in (plain, guessed, dealer):
        poller.register(sock, zmq.POLLIN)
    got = dict(poller.poll(8000))
    print(json.dumps({"received": len(got)}))
    """
)


def attack_as_another_user(node, hub, token, kernel_id):
    """OTHER subscribes to the kernel's IOPub and posts to its shell while it prints."""
    info = kernel_connection(kernel_id)
    marker = f"/tmp/factorylab-kernel-attack-{uuid.uuid4().hex}"
    printer = (
        "import time\nfor i in range(40):\n    print('secret', i, flush=True); time.sleep(0.25)"
    )
    url = hub.url.replace("http", "ws", 1) + f"/user/{USER}/api/kernels/{kernel_id}/channels"
    socket = websocket.create_connection(url, header=[f"Authorization: token {token}"], timeout=30)
    try:
        send_execute(socket, printer, USER)
        attack = run_on_node(
            node,
            [
                "/opt/factorylab/envs/base/bin/python",
                "-c",
                ATTACK,
                info["ip"],
                str(info["iopub_port"]),
                str(info["shell_port"]),
                marker,
            ],
            user=OTHER,
            timeout=60,
        )
    finally:
        socket.close()
    assert attack.returncode == 0, attack.stderr
    assert json.loads(attack.stdout) == {"received": 0}
    assert run_on_node(node, ["test", "-e", marker]).returncode == 1, "the attacker ran code"


def assert_private_files(kernel_id: str) -> None:
    """The kernel's keys: 0600 files in 0700 directories of the user's (the Lab's
    connection file, and the one the kernel job's agent reads)."""
    uid = int(subprocess.check_output(["id", "-u", USER]))
    job_keys = f"/home/{USER}/.factorylab/kernels/{kernel_id}/connection.json"
    for path in (connection_file(kernel_id), job_keys):
        for item, mode in ((path, 0o600), (os.path.dirname(path), 0o700)):
            info = os.lstat(item)  # (Jupyter's runtime directory is sticky too: 1700)
            assert stat.S_IMODE(info.st_mode) & 0o777 == mode, f"{item}: {oct(info.st_mode)}"
            assert info.st_uid == uid, item


def connection_file(kernel_id: str) -> str:
    """The Lab's connection file of a kernel (found as root)."""
    found = subprocess.run(
        ["find", f"/home/{USER}/.local/share/jupyter/runtime", "-name", f"kernel-{kernel_id}.json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert found, "the session wrote no connection file"
    return found[0]


def kernel_connection(kernel_id: str) -> dict:
    """The Lab's connection file of a kernel (as root: the test's view, not the attacker's)."""
    with open(connection_file(kernel_id)) as handle:
        return json.load(handle)


def test_a_hostile_kernelspec_gets_a_sentence_and_no_job(hub, lab):
    """The user copies the kernelspec into their own kernels and asks for 64 GPUs."""
    spec = proxied(hub, USER, "api/kernelspecs", lab).json()["kernelspecs"][SPEC]["spec"]
    spec["metadata"]["kernel_provisioner"]["config"]["options"]["gpus"] = "64"
    folder = f"/home/{USER}/.local/share/jupyter/kernels/greedy"
    write = f"mkdir -p {folder} && cat > {folder}/kernel.json"
    subprocess.run(
        ["runuser", "-u", USER, "--", "sh", "-c", write],
        input=json.dumps(spec),
        text=True,
        check=True,
    )
    try:
        response = proxied(hub, USER, "api/kernels", lab, method="POST", json={"name": "greedy"})
        assert response.status_code == 201, response.text  # a pending kernel, at once
        kernel_id = response.json()["id"]
        model = wait_for_kernel(hub, lab, kernel_id, lambda m: m["execution_state"] == "dead")
        # the reason is what the Lab's "Error Starting Kernel" dialog shows
        assert model["reason"].startswith(
            "Your kernel job was not submitted. gpus: 64 is outside the allowed range"
        ), model
        assert not kernel_jobs()
        gone = proxied(hub, USER, f"api/kernels/{kernel_id}", lab, method="DELETE")
        assert gone.status_code == 204, gone.text
    finally:
        subprocess.run(["rm", "-rf", folder], check=True)


def wait_for_kernel(hub, token, kernel_id, done, seconds: float = 30) -> dict:
    """The kernel's model (``GET api/kernels/<id>``) once ``done(model)``."""
    deadline = time.monotonic() + seconds
    while True:
        model = proxied(hub, USER, f"api/kernels/{kernel_id}", token).json()
        if done(model) or time.monotonic() > deadline:
            return model
        time.sleep(0.5)


def test_a_waiting_kernel_is_answered_at_once_and_shut_down_at_once(hub, lab, gpus_full):
    """Every GPU is taken: the request to open the kernel is not held while its job waits,
    and shutting the kernel down then ends the waiting job."""
    began = time.monotonic()
    response = proxied(hub, USER, "api/kernels", lab, method="POST", json={"name": SPEC})
    assert response.status_code == 201, response.text
    assert time.monotonic() - began < 5
    kernel_id = response.json()["id"]
    assert response.json()["execution_state"] == "starting"

    def news() -> dict:
        rows = proxied(hub, USER, "factorylab/kernels", lab).json()["kernels"]
        return next((row for row in rows if row["id"] == kernel_id), {})

    deadline = time.monotonic() + 30
    while "Waiting for a free GPU" not in (news().get("message") or ""):
        assert time.monotonic() < deadline, f"no news of the waiting job: {news()}"
        time.sleep(0.5)
    [(job_id, state, _, _)] = kernel_jobs()
    assert state == "PENDING" and news()["state"] == "pending" and news()["job_id"] == job_id
    # the Lab's interrupt button meanwhile: a sentence, not an error
    interrupted = proxied(hub, USER, f"api/kernels/{kernel_id}/interrupt", lab, method="POST")
    assert interrupted.status_code == 409 and "has not started yet" in interrupted.text

    began = time.monotonic()
    gone = proxied(hub, USER, f"api/kernels/{kernel_id}", lab, method="DELETE")
    assert gone.status_code == 204, gone.text
    assert time.monotonic() - began < 10, "the shutdown waited for the job"
    took = gone_within(10)
    assert took is not None, f"the waiting kernel job outlived its shutdown: {kernel_jobs()}"
    kernels = proxied(hub, USER, "api/kernels", lab).json()
    assert kernel_id not in [k["id"] for k in kernels]

    # shut down at once, before its job is even submitted: none is, or it ends at once
    response = proxied(hub, USER, "api/kernels", lab, method="POST", json={"name": SPEC})
    began = time.monotonic()
    gone = proxied(hub, USER, f"api/kernels/{response.json()['id']}", lab, method="DELETE")
    assert gone.status_code == 204, gone.text
    assert time.monotonic() - began < 10, "the shutdown waited for the job"
    assert gone_within(10) is not None, f"a kernel job outlived its shutdown: {kernel_jobs()}"


def test_stopping_the_session_leaves_no_kernel_job(hub, lab):
    open_kernel(hub, start_lab(hub))
    assert len(kernel_jobs()) == 1
    hub.stop(USER)
    took = gone_within(10)
    assert took is not None, f"the kernel job outlived its session: {kernel_jobs()}"


def test_a_session_server_killed_leaves_no_kernel_job(hub, lab):
    """kill -9 of the session's server: the hub's next poll cancels its kernel jobs."""
    open_kernel(hub, start_lab(hub))
    assert len(kernel_jobs()) == 1
    subprocess.run(["kill", "-9", str(session_pid(USER))], check=True)
    took = gone_within(30)
    assert took is not None, f"the kernel job outlived its killed session: {kernel_jobs()}"


TESTER = "demo38"  # in factorylab-testers: the demo's idle-test kernel (10 idle seconds)


def test_an_idle_kernel_job_is_shut_down_and_a_busy_one_is_not(hub, session):
    session(TESTER, {"profile": "cpu-notebook"})
    token = hub.user_token(TESTER)
    kernel_id = open_kernel(hub, token, TESTER, "slurm-idle-test")
    # busy for 15 s, beyond the limit: still there
    code = "import time; time.sleep(15); print('done')"
    out = run_in_kernel(hub, TESTER, token, code, kernel_id=kernel_id, timeout=60)
    assert out.strip() == "done"
    assert kernel_jobs(TESTER)
    # then idle: shut down within its 10 s and the culler's 5 s (and the job with it)
    started = time.monotonic()
    while kernel_jobs(TESTER):
        assert time.monotonic() - started < 30, "the idle kernel job was not shut down"
        time.sleep(1)
    kernels = proxied(hub, TESTER, "api/kernels", token).json()
    assert kernel_id not in [k["id"] for k in kernels]
