"""PAM login for the demo users, through the hub's real login form."""

import re

import requests
import yaml

from ..unit.conftest import REPO
from .hub import HUB_URL


def _login(user, password):
    browser = requests.Session()
    page = browser.get(f"{HUB_URL}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    return browser, browser.post(
        f"{HUB_URL}/hub/login",
        data={"username": user, "password": password, "_xsrf": xsrf},
        allow_redirects=False,
        timeout=30,
    )


def test_demo_user_logs_in_with_the_site_password():
    password = yaml.safe_load((REPO / "hub_config" / "site.local.yaml").read_text())["demo"][
        "password"
    ]
    browser, response = _login("demo38", password)
    assert response.status_code == 302, response.text[:500]
    assert "jupyterhub-session-id" in browser.cookies or any(
        c.name.startswith("jupyterhub-hub-login") for c in browser.cookies
    )


def test_wrong_password_is_refused():
    _, response = _login("demo38", "not-the-password")
    assert response.status_code == 403
    assert "Invalid username or password" in response.text


def test_users_outside_the_group_are_refused():
    _, response = _login("factorylab", "anything")
    assert response.status_code == 403
