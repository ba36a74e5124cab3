"""One user cannot reach another's files or server (the demo cluster's users)."""

import pwd
import stat
from pathlib import Path

from ..support.hub import demo_users, proxied, run_in_kernel


def test_demo_homes_are_private():
    # every account the site file names (not whatever /home holds): none may be missing
    users = demo_users()
    assert users, "the demo site file names no demo users"
    for user in users:
        account = pwd.getpwnam(user)  # KeyError: make up did not create the account
        home = Path(account.pw_dir)
        assert home.is_dir(), f"{user}'s home {home} does not exist"
        info = home.stat()
        assert info.st_uid == account.pw_uid, f"{home} is not owned by {user}"
        assert stat.S_IMODE(info.st_mode) == 0o700, (home, oct(info.st_mode))


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
