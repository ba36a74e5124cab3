"""The site file: the model of what a FactoryLab site offers, and its loader.

This wing runs no command and knows no JupyterHub; every other wing reads the site
through :class:`Site`.
"""

from spawners.site.loader import SiteFileError, cached_site, load_site, parse_site
from spawners.site.model import Site

__all__ = ["Site", "SiteFileError", "cached_site", "load_site", "parse_site"]
