"""The launcher's course material steps: which repositories a session trusts, and the
nbgitpuller pull that keeps a member's edits."""

import os
import runpy
import subprocess

import pytest

from .test_session_launcher import LAUNCHER

PARTS = runpy.run_path(str(LAUNCHER), run_name="not_main")
check_trusted_repository = PARTS["check_trusted_repository"]


def bare_repository(where):
    work = where / "work"
    work.mkdir()
    (work / "lesson.md").write_text("lesson 1\n")
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=admin"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=work, check=True)
    subprocess.run([*git, "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=work, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(where / "m.git")], check=True)
    return where / "m.git"


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root's files")
def test_only_a_repository_root_alone_can_change_is_trusted(tmp_path):
    repository = bare_repository(tmp_path)
    tmp_path.chmod(0o755)
    check_trusted_repository(str(repository))  # root's, 0755, under a sticky /tmp
    (repository / "config").chmod(0o666)
    with pytest.raises(OSError, match="config can be changed by someone other than root"):
        check_trusted_repository(str(repository))
    (repository / "config").chmod(0o644)
    os.chown(repository, 1000, 1000)
    with pytest.raises(OSError, match=r"m\.git can be changed by someone other than root"):
        check_trusted_repository(str(repository))
    os.chown(repository, 0, 0)
    link = tmp_path / "link.git"
    link.symlink_to(repository)
    tmp_path.chmod(0o777)  # the folder above the real repository is now anyone's
    with pytest.raises(OSError, match="can be changed by someone other than root"):
        check_trusted_repository(str(link))


def test_a_missing_repository_is_said_plainly(tmp_path):
    with pytest.raises(OSError, match="does not exist"):
        check_trusted_repository(str(tmp_path / "nothing.git"))
