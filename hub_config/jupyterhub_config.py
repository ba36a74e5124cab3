# FactoryLab's JupyterHub configuration. Everything site-specific comes from the site
# file named by FACTORYLAB_SITE (default /etc/factorylab/site.yaml); see
# hub_config/site.example.yaml. Local overrides may follow the call below.
import os

from spawners.hub.config import configure_hub

c = get_config()  # noqa: F821 - provided by JupyterHub
configure_hub(c, os.environ.get("FACTORYLAB_SITE", "/etc/factorylab/site.yaml"))
