"""Runs inside a session job, before session_launcher.py (the job script joins the two):
the files a session needs before its server starts. Stdlib only, any Python 3.8+ image;
the Dask certificates also need ``cryptography``, which every image has (jupyterhub
requires it, via certipy).
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time

#: Dask certificates outlast any session, even extended: their CA is made for one job and
#: its key never leaves memory, so the expiry is no part of the protection.
DASK_TLS_DAYS = 366
#: The longest a course's material may take to pull before the server starts (seconds).
MATERIAL_TIMEOUT = 120


def write_dask_config(started):
    """Fill in what only the job knows and write the config where Dask reads it."""
    text = os.environ.pop("FACTORYLAB_DASK_CONFIG", "")
    directory = os.environ.get("DASK_CONFIG")
    if not text or not directory:
        return
    walltime = int(os.environ.get("FACTORYLAB_WALLTIME_SECONDS", "0"))
    margin = int(os.environ.get("FACTORYLAB_DASK_DEADLINE_MARGIN", "0"))
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started + walltime - margin))
    text = text.replace("@SESSION_END@", end).replace("@NODE_ADDRESS@", node_address())
    json.loads(text)  # still valid JSON (and so valid YAML) after the substitution
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "factorylab-session.yaml")
    with open(path + ".tmp", "w") as handle:
        handle.write(text + "\n")
    os.replace(path + ".tmp", path)
    print(f"FactoryLab: Dask configuration for SLURMCluster() in {path}", flush=True)


def make_dask_certificates(names, addresses, days=DASK_TLS_DAYS):
    """A new CA and one certificate it signs, for servers and clients alike (PEM bytes).

    Returns ``{"ca": ..., "cert": ..., "key": ...}``; the CA's key is dropped, so it never
    signs anything else. Distributed checks no host names; the node's go in all the same.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (Python 3.8+)
    job = os.environ.get("SLURM_JOB_ID") or f"pid {os.getpid()}"
    label = f"FactoryLab Dask {os.environ.get('USER') or os.getuid()} job {job}"
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label[:56] + " CA")])
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    unused = "content_commitment key_encipherment data_encipherment key_agreement"
    unused = dict.fromkeys((unused + " encipher_only decipher_only").split(), False)

    def sign(subject, public_key, ca, *extensions):
        builder = x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
        builder = builder.public_key(public_key).serial_number(x509.random_serial_number())
        builder = builder.not_valid_before(now - datetime.timedelta(hours=1))  # nodes' clocks
        builder = builder.not_valid_after(now + datetime.timedelta(days=days))
        usage = x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **unused)
        builder = builder.add_extension(x509.BasicConstraints(ca, 0 if ca else None), True)
        builder = builder.add_extension(usage, True)
        for extension in (x509.SubjectKeyIdentifier.from_public_key(public_key), *extensions):
            builder = builder.add_extension(extension, False)
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    alternative = [x509.DNSName(name) for name in names]
    alternative += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    roles = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = sign(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label[:64])]),
        key.public_key(),
        False,
        x509.ExtendedKeyUsage(roles),
        x509.SubjectAlternativeName(alternative),
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
    )
    pem = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return {
        "ca": sign(ca_name, ca_key.public_key(), True),
        "cert": cert,
        "key": key.private_bytes(*pem, serialization.NoEncryption()),
    }


def write_private_files(directory, files):
    """Write ``files`` (``{name: bytes}``) as 0600 files into ``directory``, made 0700.

    The directory must be this user's and no symbolic link; each file is written under a
    new temporary name, then renamed over the old one: no write follows a link.
    """
    os.makedirs(os.path.dirname(directory), mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    if os.path.islink(directory):
        raise OSError(f"{directory} is a symbolic link: no keys written there")
    folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.fstat(folder).st_uid != os.geteuid():
            raise OSError(f"{directory} is another user's: no keys written there")
        os.fchmod(folder, 0o700)
        for name, data in files.items():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f".{name}.tmp", dir_fd=folder)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            with os.fdopen(os.open(f".{name}.tmp", flags, 0o600, dir_fd=folder), "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(data)
            os.replace(f".{name}.tmp", name, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)


def write_dask_tls():
    """Make this job's Dask CA, certificate and key where the Dask configuration names them.

    First the previous job's configuration goes (it names the previous job's files): if
    this fails, the session has no Dask configuration rather than a stale one.
    """
    text = os.environ.get("FACTORYLAB_DASK_CONFIG", "")
    directory = os.environ.get("DASK_CONFIG")
    if not text or not directory:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(directory, "factorylab-session.yaml"))
    tls = json.loads(text).get("distributed", {}).get("comm", {}).get("tls")
    if not tls:
        return
    paths = {"ca": tls["ca-file"], **tls["scheduler"]}  # the same pair for every role
    folder = os.path.dirname(paths["ca"])
    if any(tls[role] != tls["scheduler"] for role in ("worker", "client")) or not (
        os.path.isabs(folder) and {os.path.dirname(p) for p in paths.values()} == {folder}
    ):
        raise ValueError("the Dask TLS files are not one CA, certificate and key in one folder")
    names = {socket.gethostname(), os.environ.get("SLURMD_NODENAME") or "", "localhost"}
    plain = set("abcdefghijklmnopqrstuvwxyz0123456789.-")
    names = sorted(n for n in names if n and set(n.lower()) <= plain)
    pems = make_dask_certificates(names, sorted({node_address(), "127.0.0.1"}))
    write_private_files(folder, {os.path.basename(paths[kind]): pems[kind] for kind in pems})
    print(f"FactoryLab: Dask TLS certificates (a CA made for this job) in {folder}", flush=True)


def write_tls_files():
    """Internal SSL: write the session's key pair and the CA the hub sent (0600, 0700 dir)."""
    files = json.loads(os.environ.pop("FACTORYLAB_TLS_FILES", "") or "{}")
    for path, text in files.items():
        write_private_files(os.path.dirname(path), {os.path.basename(path): text.encode()})


def deliver_notebooks():
    """Copy the site's starter notebooks into the user's folder, never over their files.

    A file is copied once: if the user edits it, their version stays; if they delete
    it, it does not come back (``.factorylab-delivered`` lists what was delivered). New
    notebooks the site adds later arrive at the next session.
    """
    source = os.environ.pop("FACTORYLAB_NOTEBOOKS_SOURCE", "")
    target = os.environ.pop("FACTORYLAB_NOTEBOOKS_TARGET", "")
    if not source or not target or not os.path.isdir(source):
        return
    manifest = os.path.join(target, ".factorylab-delivered")
    try:
        with open(manifest) as handle:
            delivered = {line.rstrip("\n") for line in handle}
    except OSError:
        delivered = set()
    copied = []
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            relative = os.path.relpath(os.path.join(root, name), source)
            if name.startswith(".") or relative in delivered:
                continue
            destination = os.path.join(target, relative)
            if not os.path.lexists(destination):
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                shutil.copyfile(os.path.join(root, name), destination)
                copied.append(relative)
            delivered.add(relative)
    os.makedirs(target, exist_ok=True)
    with open(manifest, "w") as handle:
        handle.writelines(f"{line}\n" for line in sorted(delivered))
    if copied:
        print(f"FactoryLab: {len(copied)} starter notebook files copied to {target}", flush=True)


def check_trusted_repository(path):
    """A repository on a path is trusted (git's safe.directory) only if root alone can
    change it: the repository, its git folder and configuration, and every folder above
    it (after links are resolved) are owned by root and writable by nobody else (a
    folder above may be a sticky one, such as /tmp). Anyone else who could write it
    could run code as every member who pulls it."""
    real = os.path.realpath(path)
    if not os.path.exists(real):
        raise OSError(f"{path} does not exist")
    inside = [real] + [
        os.path.join(real, *part) for part in (("config",), (".git",), (".git", "config"))
    ]
    above, parent = [], os.path.dirname(real)
    while True:
        above.append(parent)
        if parent == "/":
            break
        parent = os.path.dirname(parent)
    for place in inside + above:
        try:
            info = os.lstat(place)
        except FileNotFoundError:
            continue
        sticky_parent = place in above and info.st_mode & 0o1000
        if info.st_uid != 0 or (info.st_mode & 0o022 and not sticky_parent):
            raise OSError(
                f"{place} can be changed by someone other than root, so {path} is not "
                f"trusted as the course's material; ask an admin to fix its ownership"
            )


def pull_material():
    """Pull a course's material into the member's home with nbgitpuller, whose merge
    rules keep the member's edits: a first pull clones; later ones merge the course's
    changes, and a file the member changed keeps the member's version.

    A repository on a path belongs to someone else, and git refuses those ("dubious
    ownership"). For this session only, git's system configuration is a file that
    includes the real one and trusts that one path (the site's admins chose it), so
    the re-pulls through nbgitpuller's endpoint in the Lab work too.
    """
    material = json.loads(os.environ.pop("FACTORYLAB_COURSE_MATERIAL", "") or "{}")
    if not material:
        return
    repo = material["repo"]
    if not repo.startswith(("http://", "https://", "ssh://", "git://")):
        check_trusted_repository(repo.removeprefix("file://"))
        config = material["gitconfig"]
        text = "[include]\n\tpath = /etc/gitconfig\n[safe]\n\tdirectory = {}\n"
        write_private_files(
            os.path.dirname(config),
            {os.path.basename(config): text.format(repo.removeprefix("file://")).encode()},
        )
        os.environ["GIT_CONFIG_SYSTEM"] = config
    os.makedirs(os.path.dirname(material["target"]), exist_ok=True)
    command = [sys.executable, "-m", "nbgitpuller.pull", repo]
    command += [material.get("branch") or "", material["target"]]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=MATERIAL_TIMEOUT, check=False
    )
    if result.returncode:
        last = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise OSError(f"nbgitpuller failed: {' / '.join(last)}")
    print(f"FactoryLab: the course material is in {material['target']}", flush=True)


def write_kernelspecs():
    """The site's kernel jobs this user may open, as kernelspecs under the first
    JUPYTER_PATH entry (``<session dir>/jupyter/kernels``), replacing the last session's."""
    specs = json.loads(os.environ.pop("FACTORYLAB_KERNELSPECS", "") or "{}")
    paths = os.environ.get("JUPYTER_PATH", "").split(":")
    if not specs or not paths[0]:
        return
    kernels = os.path.join(paths[0], "kernels")
    write_private_files(paths[0], {})
    write_private_files(kernels, {})
    for name in os.listdir(kernels):
        if name.startswith("slurm-") and name not in specs:
            shutil.rmtree(os.path.join(kernels, name), ignore_errors=True)
    for name, spec in specs.items():
        text = json.dumps(spec, indent=1, sort_keys=True) + "\n"
        write_private_files(os.path.join(kernels, name), {"kernel.json": text.encode()})
    print(f"FactoryLab: kernel jobs in the Launcher: {', '.join(sorted(specs))}", flush=True)
