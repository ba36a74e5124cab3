"""Render a session's batch script with Jinja2, from typed values only."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from spawners.session.containers import container_prefix
from spawners.session.dask import DEADLINE_MARGIN, session_dask_config
from spawners.session.idle import idle_limit, server_args
from spawners.session.paths import job_log_dir, session_dir
from spawners.session.render import templates
from spawners.session.request import SessionRequest
from spawners.site import Site
from spawners.site.types import SLURM_NAME, is_valid_username

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: An absolute path of plain characters: safe in an ``#SBATCH`` line and unquoted.
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./%+-]*$")

#: The in-job launcher, in the order the job script joins its parts (templates/).
LAUNCHER_PARTS = ("node_address.py", "session_files.py", "session_launcher.py")

#: Where a session's kernelspecs go, in its session directory (a JUPYTER_PATH entry).
KERNELSPEC_DIR = "jupyter"

#: The Jupyter configuration that sessions without GPUs add (in each image env, from
#: images/base/overlay): it turns the GPU dashboards (nvdashboard) off.
WITHOUT_GPU_CONFIG = "etc/factorylab/without-gpu"


@dataclass(frozen=True)
class JobSpec:
    """Everything the batch script needs. Built by the spawner from trusted values."""

    user: str
    server_name: str
    request: SessionRequest
    job_name: str
    workdir: str
    home: str
    venv: str
    server_args: Sequence[str] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    apptainer: str | None = None
    binds: Sequence[str] = ()
    dask_config: Mapping | None = None
    notebooks: tuple[str, str] | None = None
    tls_files: Mapping[str, str] | None = None
    signing_key: bytes | None = None

    @property
    def session_dir(self) -> str:
        """Per-server directory in the user's home (Dask configuration, certificates)."""
        return session_dir(self.home, self.server_name)

    @property
    def log_dir(self) -> str:
        """Where the job writes its log (``job-<id>.log``); private to the user."""
        return job_log_dir(self.home, self.server_name)

    def check(self) -> None:
        """Refuse anything that could break out of an ``#SBATCH`` line or a quote."""
        if not is_valid_username(self.user):
            raise ValueError(f"user name {self.user[:40]!r} is not a plain Unix user name")
        if self.server_name and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.server_name):
            raise ValueError("server names may use letters, digits, '.', '_' and '-' only")
        if not re.fullmatch(SLURM_NAME, self.job_name):
            raise ValueError(f"job name {self.job_name!r} is not a plain name")
        paths = [("home", self.home), ("working directory", self.workdir)]
        if self.notebooks is not None:
            paths.append(("notebook source", self.notebooks[0]))
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", self.notebooks[1]):
                raise ValueError(f"notebook folder {self.notebooks[1]!r} must be a plain name")
        for label, path in paths:
            if not SAFE_PATH.match(path):
                raise ValueError(f"{label} {path!r} must be an absolute path of plain characters")
        for path in self.tls_files or ():
            if not SAFE_PATH.match(path) or not path.startswith(self.session_dir + "/"):
                raise ValueError(f"certificate path {path!r} must be in {self.session_dir}")
        for label, path in (
            ("Apptainer image", self.apptainer),
            *(("bind", b) for b in self.binds),
        ):
            if path is not None and not SAFE_PATH.match(path.split(":")[0]):
                raise ValueError(f"{label} {path!r} must be an absolute path of plain characters")
        for key, value in self.environment.items():
            if not _ENV_NAME.match(key):
                raise ValueError(f"environment variable name {key!r} is not valid")
            if not str(value).isprintable():
                raise ValueError(f"environment variable {key} contains control characters")


SIGNATURE_PREFIX = "# factorylab-signature: "


def sign_script(script: str, key: bytes) -> str:
    r"""Add the hub's HMAC-SHA256 signature as the script's second line.

    The extend helper (running as SlurmUser) reads the job's script back from Slurm and
    recomputes the signature over every other line, so it acts only on sessions the hub
    submitted: a job a user submits by hand, whatever its name and comment, has none.

    >>> signed = sign_script("#!/bin/bash\necho hi\n", b"k")
    >>> signed.splitlines()[1].startswith(SIGNATURE_PREFIX), verify_script(signed, b"k")
    (True, True)
    >>> verify_script(signed.replace("hi", "ho"), b"k")
    False
    """
    first, _, rest = script.partition("\n")
    line = SIGNATURE_PREFIX + _digest(script, key)
    return f"{first}\n{line}\n{rest}"


def verify_script(script: str, key: bytes) -> bool:
    """Whether ``script`` carries exactly one valid signature under ``key``."""
    found = [line for line in script.split("\n") if line.startswith(SIGNATURE_PREFIX)]
    if len(found) != 1:
        return False
    body = "\n".join(line for line in script.split("\n") if line != found[0])
    return hmac.compare_digest(found[0][len(SIGNATURE_PREFIX) :], _digest(body, key))


def _digest(body: str, key: bytes) -> str:
    canonical = body.rstrip("\n") + "\n"
    return hmac.new(key.strip(), canonical.encode(), hashlib.sha256).hexdigest()


def render_job_script(spec: JobSpec) -> str:
    """Return the batch script for ``spec``.

    >>> from spawners.session.request import SessionRequest
    >>> req = SessionRequest("cpu", "base", 0, None, 1, 2048, 3600)
    >>> script = render_job_script(JobSpec("demo01", "", req, "factorylab",
    ...     "/home/demo01", "/home/demo01", "/opt/factorylab/envs/base"))
    >>> "#SBATCH --mem=2G" in script and "--gres" not in script
    True
    >>> "log_dir=/home/demo01/.factorylab/servers/default/logs" in script
    True
    """
    spec.check()
    venv_bin = f"{spec.venv.rstrip('/')}/bin"
    environment = dict(spec.environment)
    if spec.dask_config is not None:
        environment["DASK_CONFIG"] = f"{spec.session_dir}/dask"
        environment["FACTORYLAB_DASK_CONFIG"] = json.dumps(spec.dask_config, sort_keys=True)
        environment["FACTORYLAB_WALLTIME_SECONDS"] = str(spec.request.walltime_seconds)
        environment["FACTORYLAB_DASK_DEADLINE_MARGIN"] = str(DEADLINE_MARGIN)
    if spec.notebooks is not None:
        source, directory = spec.notebooks
        environment["FACTORYLAB_NOTEBOOKS_SOURCE"] = source
        environment["FACTORYLAB_NOTEBOOKS_TARGET"] = f"{spec.home.rstrip('/')}/{directory}"
    if not spec.request.gpus:
        # No GPU to show: leave nvdashboard out, server and Lab (before any site path).
        paths = (
            f"{spec.venv.rstrip('/')}/{WITHOUT_GPU_CONFIG}",
            environment.get("JUPYTER_CONFIG_PATH"),
        )
        environment["JUPYTER_CONFIG_PATH"] = ":".join(path for path in paths if path)
    if spec.tls_files:
        # Internal SSL: the session's key pair and CA, written 0600 by the launcher.
        environment["FACTORYLAB_TLS_FILES"] = json.dumps(dict(spec.tls_files), sort_keys=True)
    script = templates.get_template("session.sh.j2").render(
        user=spec.user,
        server_name=spec.server_name,
        request=spec.request,
        job_name=spec.job_name,
        log_dir=spec.log_dir,
        workdir=spec.workdir,
        home=spec.home,
        env_bin=venv_bin,
        python=f"{venv_bin}/python",
        server=f"{venv_bin}/jupyterhub-singleuser",
        server_args=list(spec.server_args),
        environment=environment,
        container=container_prefix(spec.apptainer, spec.binds, spec.request.gpus),
        launcher_parts=LAUNCHER_PARTS,
    )
    return sign_script(script, spec.signing_key) if spec.signing_key else script


#: Variables that never pass from the hub's environment into a session.
HUB_ONLY_VARIABLES = frozenset({"PATH", "VIRTUAL_ENV", "HOME", "USER", "SHELL", "PYTHONPATH"})


def session_job_spec(
    site: Site,
    request: SessionRequest,
    user: str,
    home: str,
    server_name: str,
    *,
    hub_environment: Mapping[str, str] | None = None,
    hub_args: Sequence[str] = (),
    tls_files: Mapping[str, str] | None = None,
    signing_key: bytes | None = None,
    kernelspecs: Mapping[str, dict] | None = None,
    material: Mapping[str, str] | None = None,
) -> JobSpec:
    """Everything a session's batch script is rendered from, for a checked request.

    The hub passes what JupyterHub adds at spawn time (its environment, with the
    server's token, and its server arguments); ``factorylab job-script`` passes none.
    """
    image = site.images[request.image]
    environment = {
        key: value
        for key, value in (hub_environment or {}).items()
        if key not in HUB_ONLY_VARIABLES
    }
    environment["FACTORYLAB_ACTIVITY_INTERVAL"] = str(site.idle.report_every)
    if kernelspecs:
        # The launcher writes them under the first JUPYTER_PATH entry: the Launcher lists
        # the site's kernel jobs this user may open (spawners.session.kernels).
        paths = (
            f"{session_dir(home, server_name)}/{KERNELSPEC_DIR}",
            environment.get("JUPYTER_PATH"),
        )
        environment["JUPYTER_PATH"] = ":".join(path for path in paths if path)
        environment["FACTORYLAB_KERNELSPECS"] = json.dumps(dict(kernelspecs), sort_keys=True)
    if material:
        # A course's material: the launcher pulls it with nbgitpuller before the server starts.
        environment["FACTORYLAB_COURSE_MATERIAL"] = json.dumps(dict(material), sort_keys=True)
    return JobSpec(
        user=user,
        server_name=server_name,
        request=request,
        job_name=site.slurm.job_name,
        workdir=home,
        home=home,
        venv=image.venv,
        server_args=[*hub_args, *server_args(idle_limit(site, request))],
        environment=environment,
        apptainer=image.apptainer,
        binds=image.binds,
        dask_config=(
            session_dask_config(site, request, user, server_name, home)
            if site.dask.enabled
            else None
        ),
        notebooks=(
            (site.notebooks.source, site.notebooks.directory) if site.notebooks.enabled else None
        ),
        tls_files=tls_files or None,
        signing_key=signing_key,
    )
