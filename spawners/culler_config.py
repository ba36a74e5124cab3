"""jupyterhub-idle-culler's --config file: FactoryLab's per-server idle limits."""

from spawners.idle_policy import configure_culler

configure_culler(c)  # noqa: F821 - ``c`` is provided by the culler's config loader
