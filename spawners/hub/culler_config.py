"""jupyterhub-idle-culler's --config file: FactoryLab's per-server idle limits.

It also ties the culler's life to the hub's. The hub stops its managed services with
SIGINT (then SIGTERM after 10 s), but JupyterHub starts them in a session of their own,
so neither supervisord's process-group kill nor a hub that is SIGKILLed (or crashes)
reaches the culler, which would stay behind polling with a token the next hub no longer
accepts. So the culler leaves at once on SIGINT or SIGTERM (it keeps no state), and the
kernel sends it SIGTERM when the hub dies (PR_SET_PDEATHSIG). Under systemd the unit's
cgroup covers this as well.
"""

import ctypes
import os
import signal

from spawners.hub.culler import configure_culler

configure_culler(c)  # noqa: F821 - ``c`` is provided by the culler's config loader

PR_SET_PDEATHSIG = 1

for _signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_signum, lambda *_: os._exit(0))
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
with open(f"/proc/{os.getppid()}/cmdline", "rb") as _parent:
    if b"jupyterhub" not in _parent.read():  # the hub died before we got here
        os._exit(0)
