"""Farm job descriptions for existing render-farm engines (``actormatte farm``).

Called by :mod:`actormatte.cli.farm_cmd`. A shot becomes one ``propagate`` task (sequential XMem,
resumable), ``matte`` tasks over contiguous chunks of frames that depend on it, and an optional
``verify`` task, then one ``qc`` task writing the shot's ``qc.json`` (docs/FARM.md). Writers:

- :mod:`actormatte.farm.openjd`: Open Job Description template + parameter files (``openjd run``,
  AWS Deadline Cloud ``deadline bundle submit``);
- :mod:`actormatte.farm.opencue`: OpenCue job XML through opencue-pyoutline (optional dependency);
- :mod:`actormatte.farm.deadline`: Deadline CommandLine-plugin job/plugin info files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from actormatte.errors import DependencyError
from actormatte.farm import deadline, opencue, openjd
from actormatte.farm.chunks import format_range, split_range
from actormatte.farm.spec import FarmJob, MaskArg, Slots, matte_argv, propagate_argv, qc_argv

logger = logging.getLogger(__name__)

#: Engine names of ``--engine`` (``all`` = every one of them).
ENGINES = ("openjd", "opencue", "deadline")


@dataclass(frozen=True)
class EngineSettings:
    """Engine-specific knobs.

    Attributes:
        show: OpenCue show.
        shot: OpenCue shot (``None``: the job name).
        pool: Deadline pool (``None``: the repository default).
        group: Deadline group (``None``: the repository default).
    """

    show: str = "testing"
    shot: str | None = None
    pool: str | None = None
    group: str | None = None


def write_jobs(job: FarmJob, job_dir: str | Path, engines: tuple[str, ...] = ENGINES,
               settings: EngineSettings | None = None,
               skip_unavailable: bool = False) -> dict[str, list[Path]]:
    """Write the job descriptions of ``job`` for ``engines`` under ``job_dir``.

    Args:
        job: The farm job.
        job_dir: Folder for the descriptions (created).
        engines: Names from :data:`ENGINES`.
        settings: Engine-specific knobs.
        skip_unavailable: Leave out (with a warning) an engine whose optional dependency is
            missing instead of raising.

    Returns:
        ``{engine: [paths written]}``.

    Raises:
        DependencyError: An engine's optional dependency is missing and not skipped.
        InputError: A path or option cannot be written into an engine's format.
    """
    settings = settings or EngineSettings()
    root = Path(job_dir).expanduser().absolute()
    root.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for engine in engines:
        if engine == "openjd":
            written[engine] = openjd.write(job, root)
        elif engine == "opencue":
            try:
                written[engine] = opencue.write(job, root, settings.show, settings.shot)
            except DependencyError as exc:
                if not skip_unavailable:
                    raise
                logger.warning("OpenCue job not written: %s", exc)
        elif engine == "deadline":
            written[engine] = deadline.write(job, root, settings.pool, settings.group)
        else:
            raise ValueError(f"unknown farm engine {engine!r}")
    return written


__all__ = [
    "ENGINES",
    "EngineSettings",
    "FarmJob",
    "MaskArg",
    "Slots",
    "format_range",
    "matte_argv",
    "propagate_argv",
    "qc_argv",
    "split_range",
    "write_jobs",
]
