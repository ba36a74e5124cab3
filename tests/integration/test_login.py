"""PAM login for the demo users, through the hub's real login form."""

from .hub import demo_password, login


def test_demo_user_logs_in_with_the_site_password():
    browser, response = login("demo38", demo_password())
    assert response.status_code == 302, response.text[:500]
    assert any(cookie.name.startswith("jupyterhub-") for cookie in browser.cookies)


def test_wrong_password_is_refused():
    _, response = login("demo38", "not-the-password")
    assert response.status_code == 403
    assert "Invalid username or password" in response.text


def test_users_outside_the_group_are_refused():
    _, response = login("factorylab", "anything")
    assert response.status_code == 403
