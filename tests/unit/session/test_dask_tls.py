"""The session's Dask certificates: made by the launcher, trusted only by the session.

The handshakes use contexts built as ``distributed.security.Security`` builds them
(``create_default_context`` with the CA file, the certificate chain, ``CERT_REQUIRED``
both ways, no host name check). The tests that start Dask itself need ``distributed``
and ``dask_jobqueue``, which are in the session images, not in the hub's venv: they are
skipped where those are not installed.
"""

import json
import os
import runpy
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from spawners.session.dask import dask_tls_files, session_dask_config
from spawners.session.paths import session_dir
from spawners.session.request import parse_request

from .test_session_launcher import LAUNCHER


@pytest.fixture(scope="module")
def launcher():
    """The launcher's functions, without running its main()."""
    return runpy.run_path(str(LAUNCHER))


def _write(launcher, folder: Path) -> dict[str, str]:
    """A fresh CA, certificate and key in ``folder``, as the launcher writes them."""
    pems = launcher["make_dask_certificates"](["localhost"], ["127.0.0.1"])
    names = {"ca": "ca.crt", "cert": "session.crt", "key": "session.key"}
    launcher["write_private_files"](str(folder), {names[kind]: pems[kind] for kind in names})
    return {kind: str(folder / name) for kind, name in names.items()}


def _context(purpose, ca=None, cert=None, key=None, verify=True):
    """An SSL context as distributed's Security makes one; ``verify=False`` for a
    stranger, who does not care whom it talks to."""
    context = ssl.create_default_context(purpose=purpose, cafile=ca)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, key)
    return context


def _handshake(server_context, client_context) -> tuple[Exception | None, bytes]:
    """TLS on loopback: (the server's error or None, what the client got back)."""
    listener = socket.create_server(("127.0.0.1", 0))
    outcome: list[Exception | None] = []

    def serve():
        connection, _ = listener.accept()
        try:
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(tls.recv(4))
            outcome.append(None)
        except OSError as exc:  # ssl.SSLError is an OSError
            outcome.append(exc)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    reply = b""
    try:
        raw = socket.create_connection(listener.getsockname(), timeout=5)
        with client_context.wrap_socket(raw) as tls:
            tls.sendall(b"ping")
            reply = tls.recv(4)
    except OSError:
        pass
    thread.join(5)
    listener.close()
    return outcome[0], reply


def test_the_certificate_is_signed_by_the_sessions_own_ca(launcher, tmp_path):
    files = _write(launcher, tmp_path / "dask-tls")
    ca = x509.load_pem_x509_certificate(Path(files["ca"]).read_bytes())
    cert = x509.load_pem_x509_certificate(Path(files["cert"]).read_bytes())
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # only these three files: the CA's key is never written
    folder = tmp_path / "dask-tls"
    assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "session.crt", "session.key"]
    other = Path(_write(launcher, tmp_path / "other")["ca"]).read_bytes()
    assert other != Path(files["ca"]).read_bytes()  # a new CA every time
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(other))


def test_mutual_tls_accepts_the_session_and_refuses_strangers(launcher, tmp_path):
    mine = _write(launcher, tmp_path / "mine")
    theirs = _write(launcher, tmp_path / "theirs")  # another session's CA and certificate
    server = _context(ssl.Purpose.CLIENT_AUTH, mine["ca"], mine["cert"], mine["key"])
    session = _context(ssl.Purpose.SERVER_AUTH, mine["ca"], mine["cert"], mine["key"])
    assert _handshake(server, session) == (None, b"ping")
    for stranger in (
        _context(ssl.Purpose.SERVER_AUTH, verify=False),  # no certificate at all
        _context(ssl.Purpose.SERVER_AUTH, None, theirs["cert"], theirs["key"], verify=False),
    ):
        error, reply = _handshake(server, stranger)
        assert isinstance(error, ssl.SSLError) and reply == b""
    # nor does a session's client talk to another session's server
    other_server = _context(ssl.Purpose.CLIENT_AUTH, theirs["ca"], theirs["cert"], theirs["key"])
    assert _handshake(other_server, session)[1] == b""


async def test_a_dask_scheduler_with_the_session_files_refuses_strangers(launcher, tmp_path):
    pytest.importorskip("distributed")
    from distributed import Client, Scheduler
    from distributed.comm import connect
    from distributed.security import Security

    mine = _write(launcher, tmp_path / "mine")
    theirs = _write(launcher, tmp_path / "theirs")
    security = Security(
        require_encryption=True,
        tls_ca_file=mine["ca"],
        tls_scheduler_cert=mine["cert"],
        tls_scheduler_key=mine["key"],
        tls_client_cert=mine["cert"],
        tls_client_key=mine["key"],
    )
    async with Scheduler(
        protocol="tls://", host="127.0.0.1", security=security, dashboard=False
    ) as scheduler:
        assert scheduler.address.startswith("tls://127.0.0.1:")
        async with Client(scheduler.address, security=security, asynchronous=True) as client:
            assert await client.run_on_scheduler(os.getpid) == os.getpid()
        host_port = scheduler.address.split("://")[1]
        # a holder of the session's certificate gets in, even without checking the server
        holder = _context(ssl.Purpose.SERVER_AUTH, None, mine["cert"], mine["key"], verify=False)
        comm = await connect(scheduler.address, timeout=5, ssl_context=holder)
        await comm.write({"op": "identity"})
        assert (await comm.read())["type"] == "Scheduler"
        await comm.close()
        theirs_context = _context(
            ssl.Purpose.SERVER_AUTH, None, theirs["cert"], theirs["key"], verify=False
        )
        strangers = [
            ("tls://", {"ssl_context": _context(ssl.Purpose.SERVER_AUTH, verify=False)}),
            ("tls://", {"ssl_context": theirs_context}),
            ("tcp://", {}),
        ]
        for scheme, arguments in strangers:
            with pytest.raises(OSError):  # CommClosedError is one
                comm = await connect(scheme + host_port, timeout=5, **arguments)
                await comm.write({"op": "identity"})
                await comm.read()


def test_slurm_cluster_with_no_arguments_is_mutual_tls(launcher, site, tmp_path, monkeypatch):
    """What the hub configures and the launcher writes makes ``SLURMCluster()`` secure:
    a TLS scheduler, workers whose command line names the files, ``Client(cluster)``."""
    pytest.importorskip("distributed")
    dask_jobqueue = pytest.importorskip("dask_jobqueue")
    import dask
    from distributed import Client

    home = tmp_path / "home"
    config = session_dask_config(site, parse_request({}, site), "demo01", "", str(home))
    text = json.dumps(config).replace("@NODE_ADDRESS@", "127.0.0.1")
    monkeypatch.setenv("FACTORYLAB_DASK_CONFIG", text.replace("@SESSION_END@", "2099-01-01"))
    monkeypatch.setenv("DASK_CONFIG", session_dir(str(home), "") + "/dask")
    launcher["write_dask_tls"]()
    launcher["write_dask_config"](time.time())
    written = json.loads(Path(os.environ["DASK_CONFIG"], "factorylab-session.yaml").read_text())
    files = dask_tls_files(session_dir(str(home), ""))
    assert all(Path(path).is_file() for path in files.values())
    factory = config["labextension"]["factory"]  # the Lab sidebar makes the same cluster
    assert getattr(__import__(factory["module"]), factory["class"]) is dask_jobqueue.SLURMCluster
    worker = None
    with dask.config.set(dask.config.merge(dask.config.config, written)):
        cluster = dask_jobqueue.SLURMCluster(*factory["args"], **factory["kwargs"])
        try:
            assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
            command = cluster.job_script().strip().splitlines()[-1]
            for flag, kind in (
                ("--tls-ca-file", "ca"),
                ("--tls-cert", "cert"),
                ("--tls-key", "key"),
            ):
                assert f"{flag} {files[kind]}" in command
            # the worker knows only its command line here: no DASK_CONFIG
            environment = {k: v for k, v in os.environ.items() if not k.startswith("DASK")}
            worker = subprocess.Popen(
                [sys.executable, *shlex.split(command)[1:]],
                env=environment,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            with Client(cluster) as client:
                client.wait_for_workers(1, timeout=60)
                assert all(a.startswith("tls://") for a in client.scheduler_info()["workers"])
                assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
        finally:
            cluster.close()
            if worker is not None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
