"""Shared fixtures for unit tests: no daemons, no root."""

from pathlib import Path

import pytest

from spawners.site import Site, load_site

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site() -> Site:
    """The demo site file that `make up` deploys."""
    return load_site(REPO / "hub_config" / "site.local.yaml")
