"""What the session rules require of a site file, for :func:`spawners.site.load_site`:
every profile and every kernel must be a request the site accepts."""

from __future__ import annotations

from spawners.session.kernels import check_kernels
from spawners.session.request import check_profiles

SITE_CHECKS = (check_profiles, check_kernels)
