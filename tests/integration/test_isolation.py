"""One user cannot reach another's files or server (the demo cluster's users)."""

import stat
from pathlib import Path

from .hub import proxied, run_in_kernel


def test_demo_homes_are_private():
    for home in sorted(Path("/home").glob("demo[0-9][0-9]")):
        assert stat.S_IMODE(home.stat().st_mode) == 0o700, home


def test_a_users_token_and_kernel_cannot_reach_another_user(hub, session):
    owner, other = "demo31", "demo32"
    session(owner)
    session(other)
    owner_token, other_token = hub.user_token(owner), hub.user_token(other)
    # the other user's token is refused by the owner's server
    for path in ("api/contents", "api/kernels", "api/status"):
        response = proxied(hub, owner, path, other_token, allow_redirects=False)
        assert response.status_code in (302, 403), (path, response.status_code)
    assert proxied(hub, owner, "api/contents", owner_token).status_code == 200
    # the other user's kernel cannot read the owner's home
    code = (
        "import os\n"
        f"try:\n    os.listdir('/home/{owner}')\n    print('readable')\n"
        "except PermissionError:\n    print('refused')"
    )
    assert run_in_kernel(hub, other, other_token, code).strip() == "refused"
