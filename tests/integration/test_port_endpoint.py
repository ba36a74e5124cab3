"""The port endpoint accepts exactly {"port": int} from the session's own token."""

import requests

from ..support.hub import HUB_URL, process_env, proxied, session_pid

HOSTILE_BODIES = [
    b"",
    b"garbage",
    b'{"port": "8888"}',
    b'{"port": 80}',
    b'{"port": 70000}',
    b'{"port": true}',
    b'{"port": 8888, "ip": "203.0.113.5"}',
    b'{"ip": "203.0.113.5"}',
    b'{"batch_submit_cmd": "touch /tmp/pwned"}',
    b'{"exec_prefix": "sudo -u root"}',
    b"[8888]",
]


def test_only_a_port_from_the_own_token(hub, session):
    user = "demo35"
    before = session(user, {"partition": "cpu"})
    server_token = process_env(session_pid(user))["JUPYTERHUB_API_TOKEN"]
    url = f"{HUB_URL}/hub/api/factorylab/port"
    headers = {"Authorization": f"token {server_token}"}

    for body in HOSTILE_BODIES:
        response = requests.post(url, data=body, headers=headers, timeout=10)
        assert response.status_code == 400, (body, response.status_code, response.text)

    # A well-formed port from a running session changes nothing either.
    response = requests.post(url, json={"port": 2000}, headers=headers, timeout=10)
    assert response.status_code == 409

    # Another user's token, and no token, are refused.
    other = hub.user_token("demo36")
    response = requests.post(url, json={"port": 2000}, headers={"Authorization": f"token {other}"})
    assert response.status_code == 403
    assert requests.post(url, json={"port": 2000}, timeout=10).status_code == 403

    # batchspawner's handler is not routed.
    legacy = requests.post(f"{HUB_URL}/hub/api/batchspawner", json={"port": 2000}, headers=headers)
    assert legacy.status_code == 404

    after = hub.server(user)
    assert after["url"] == before["url"] and after["ready"]
    assert proxied(hub, user, "api/status", hub.user_token(user)).status_code == 200
