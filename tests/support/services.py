"""FactoryLab's daemons through the host's service manager, as `make up` set them up.

systemd where it is PID 1 (units factorylab-NAME.service, or Debian's own units for
munge, MariaDB and Slurm), supervisord elsewhere (programs factorylab-NAME; see
ansible/roles/daemon). Both answer ``status`` the LSB way: 0 running, 3 stopped.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

# The daemons that run from Debian's packaged units under systemd (daemon_distro_unit).
DISTRO_UNITS = {
    "munge": "munge.service",
    "mariadb": "mariadb.service",
    "slurmdbd": "slurmdbd.service",
    "slurmctld": "slurmctld.service",
    "slurmd": "slurmd.service",
}


def systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


def unit(name: str) -> str:
    return DISTRO_UNITS.get(name, f"factorylab-{name}.service")


def program(name: str) -> str:
    return f"factorylab-{name}"


def service(verb: str, name: str, check: bool = False) -> int:
    """Run ``verb`` (start, stop, restart, status) for daemon ``name``; its exit status.

    start, stop and restart wait until the daemon has started or stopped."""
    argv = ["systemctl", verb, unit(name)] if systemd() else ["supervisorctl", verb, program(name)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    if check and done.returncode:
        raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
    return done.returncode


def running(name: str) -> bool:
    return service("status", name) == 0


def pid(name: str) -> int | None:
    """The main process of daemon ``name``, or None when it does not run."""
    if systemd():
        argv = ["systemctl", "show", "--property=MainPID", "--value", unit(name)]
    else:
        argv = ["supervisorctl", "pid", program(name)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    return int(out) if out.isdigit() and int(out) > 0 else None
