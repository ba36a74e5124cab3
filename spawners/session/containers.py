"""How a command runs inside a site's Apptainer image (sessions and Dask workers alike)."""

from __future__ import annotations

from collections.abc import Sequence


def container_prefix(apptainer: str | None, binds: Sequence[str], gpus: int) -> list[str]:
    """``apptainer exec [--nv] --bind … IMAGE`` when there is an image, else ``[]``.

    ``--nv`` is added whenever the job has GPUs: without it CUDA is absent inside.
    """
    if not apptainer:
        return []
    words = ["apptainer", "exec"]
    if gpus:
        words.append("--nv")
    for bind in binds:
        words += ["--bind", bind]
    return [*words, apptainer]
