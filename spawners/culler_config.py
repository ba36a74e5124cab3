"""jupyterhub-idle-culler's --config file: FactoryLab's per-server idle limits."""

import os
import signal

from spawners.idle_policy import configure_culler

configure_culler(c)  # noqa: F821 - ``c`` is provided by the culler's config loader

# The hub stops its managed services with SIGINT (then SIGTERM after 10 s). The culler
# keeps no state, so it leaves at once: a hub stopped within those 10 s must not leave
# an orphaned culler behind, polling with a token the next hub no longer accepts.
for _signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_signum, lambda *_: os._exit(0))
