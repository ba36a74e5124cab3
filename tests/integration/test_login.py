"""PAM login for the demo users, through the hub's real login form."""

import grp
import pwd

import pytest
import yaml

from ..support.hub import SITE_FILE, demo_password, hub_log_mark, hub_log_since, login

SITE = yaml.safe_load(SITE_FILE.read_text())
# A Unix account with the demo password that is not in the users group (users.group):
# `make up` creates it next to the demo users (ansible/roles/users), so that the group
# rule, and not a wrong password, is what refuses it.
OUTSIDER = f"{SITE['demo'].get('prefix', 'demo')}-outsider"


def test_demo_user_logs_in_with_the_site_password():
    browser, response = login("demo38", demo_password())
    assert response.status_code == 302, response.text[:500]
    assert any(cookie.name.startswith("jupyterhub-") for cookie in browser.cookies)


def test_wrong_password_is_refused():
    mark = hub_log_mark()
    _, response = login("demo38", "not-the-password")
    assert response.status_code == 403
    assert "Invalid username or password" in response.text
    # refused by PAM, before any group rule (the log line tells the two refusals apart)
    log = hub_log_since(mark, "PAM Authentication failed ('demo38'")
    assert "PAM Authentication failed ('demo38'" in log, log[-2000:]
    assert "User 'demo38' not allowed" not in log


def test_users_outside_the_group_are_refused():
    """A real account with the right password, outside the users group: the group refuses."""
    users_group = SITE["users"]["group"]
    try:
        account = pwd.getpwnam(OUTSIDER)
    except KeyError:
        pytest.fail(
            f"there is no Unix account {OUTSIDER!r}: `make up` must create it with the demo "
            f"password, outside {users_group} (ansible/roles/users)"
        )
    group = grp.getgrnam(users_group)
    assert OUTSIDER not in group.gr_mem and account.pw_gid != group.gr_gid, group
    mark = hub_log_mark()
    _, response = login(OUTSIDER, demo_password())
    assert response.status_code == 403
    assert "Invalid username or password" in response.text  # the hub says no more than that
    # PAM accepted the password; JupyterHub's allowed_groups refused the user
    log = hub_log_since(mark, f"User '{OUTSIDER}' not allowed.")
    assert f"User '{OUTSIDER}' not allowed." in log, log[-2000:]
    assert f"PAM Authentication failed ('{OUTSIDER}'" not in log, log[-2000:]
