"""The inputs of a session's batch script, gathered from the hub's side: the user's
account, the image, the environment, Dask, certificates and the signing key."""

from __future__ import annotations

import pwd
from pathlib import Path

from traitlets import HasTraits

from spawners.session.courses import course_material
from spawners.session.job import JobSpec, session_job_spec
from spawners.session.kernels import kernelspecs_for
from spawners.session.paths import session_dir
from spawners.session.request import SessionRequest


class JobInputsMixin(HasTraits):
    """Builds the :class:`~spawners.session.job.JobSpec` of a spawn from trusted values."""

    _tls_files: dict[str, str] | None = None  # internal SSL: path in the job -> PEM

    def job_spec(
        self, request: SessionRequest, kernelspecs: dict[str, dict] | None = None
    ) -> JobSpec:
        """Build the batch-script inputs from trusted values and JupyterHub's own."""
        home = pwd.getpwnam(self.user.name).pw_dir
        course = getattr(self, "course", None)
        return session_job_spec(
            self.site,
            request,
            self.user.name,
            home,
            self.name,
            hub_environment=self.get_env(),
            hub_args=self.get_args(),
            tls_files=self._tls_files,
            signing_key=self.signing_key(),
            kernelspecs=kernelspecs,
            material=(
                course_material(course, home, session_dir(home, self.name))
                if course is not None
                else None
            ),
        )

    async def kernelspecs(self, request: SessionRequest) -> dict[str, dict]:
        """The kernel jobs this user may open from the session (the site's ``kernels:``)."""
        if not self.site.kernels:
            return {}
        return kernelspecs_for(self.site, request, await self.entitlements())

    def signing_key(self) -> bytes | None:
        """The key session scripts are signed with (None, and a warning, if unreadable)."""
        try:
            return Path(self.site.slurm.signing_key_file).read_bytes().strip() or None
        except OSError as exc:
            self.log.warning("Session scripts go unsigned; extending will be refused: %s", exc)
            return None

    async def move_certs(self, paths: dict) -> dict:
        """Internal SSL: send the session's certificates with its job, into its own home.

        The hub's copies are readable by the hub only, and the hub cannot write into a
        user's home; the launcher writes them there (0600) before the server starts.
        """
        directory = session_dir(pwd.getpwnam(self.user.name).pw_dir, self.name) + "/certs"
        moved, self._tls_files = {}, {}
        names = {"keyfile": "session.key", "certfile": "session.crt", "cafile": "ca.crt"}
        for key, name in names.items():
            moved[key] = f"{directory}/{name}"
            self._tls_files[moved[key]] = Path(paths[key]).read_text()
        return moved
