"""OpenCue job spec (the Cuebot's XML) for a shot, built with ``opencue-pyoutline``.

Called by :func:`actormatte.farm.write_jobs`; writes ``<job-dir>/opencue/job.xml``, which
``cueadmin``/pycue submit as is (``opencue.api.launchSpecAndWait(open(path).read())``).

The outline has three shell layers (four with ``verify``): ``propagate`` with ``chunk`` = the whole
range, so the Cuebot makes one task of it; ``matte`` with ``chunk`` = ``--chunk``, whose command
reads the chunk's bounds from the ``#FRAME_START#``/``#FRAME_END#`` tokens; ``matte`` depends on
all of ``propagate`` (``depend_all``: LAYER_ON_LAYER), and each layer on the one before; the last,
``qc``, is one task writing the shot's ``qc.json``. The spec is serialised without pycuerun
wrappers (``serialize(use_pycuerun=False)``), so the nodes need only ``actormatte``, not pyoutline.
Nothing here contacts a Cuebot: pyoutline's ``setup()`` writes its session files into a temporary
folder that is removed afterwards.

RQD runs a layer's ``cmd`` through a shell: every argument is quoted with :func:`shlex.quote`, so
paths with spaces or shell characters stay one argument; ElementTree escapes ``& < >``.
"""

from __future__ import annotations

import getpass
import re
import shlex
import tempfile
from pathlib import Path
from typing import Any

from actormatte.errors import DependencyError
from actormatte.farm.spec import FarmJob, matte_argv, propagate_argv, qc_argv

SPEC_DIR = "opencue"
SPEC_FILE = "job.xml"
INSTALL_HINT = ("OpenCue job specs need opencue-pyoutline: `pip install opencue-pyoutline` into "
                "the actormatte venv (or `pip install actormatte[farm]`)")


def _import_outline() -> Any:
    """Import pyoutline lazily (it pulls in pycue and grpc).

    Raises:
        DependencyError: opencue-pyoutline is not installed.
    """
    try:
        import outline
        import outline.cuerun
        import outline.modules.shell
    except ImportError as exc:
        raise DependencyError(f"{INSTALL_HINT} ({exc})") from exc
    return outline


def available() -> bool:
    """Whether opencue-pyoutline can be imported."""
    try:
        _import_outline()
    except DependencyError:
        return False
    return True


def job_name(job: FarmJob) -> str:
    """The outline's name: the job name with characters the Cuebot rejects replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"actormatte_{job.name}")


def spec_xml(job: FarmJob, show: str, shot: str | None = None, user: str | None = None) -> str:
    """Serialise the job to the Cuebot's XML spec (offline).

    Args:
        job: The farm job.
        show: OpenCue show the job belongs to.
        shot: Shot name (default: the job name).
        user: Submitting user (default: the current user).

    Raises:
        DependencyError: opencue-pyoutline is not installed.
    """
    outline = _import_outline()
    user = user or getpass.getuser()
    slots = job.slots()
    frames = f"{job.first}-{job.last}"
    shell = outline.modules.shell.Shell
    ol = outline.Outline(job_name(job), show=show, shot=shot or job.name, user=user)
    propagate = shell("propagate", command=shlex.join(propagate_argv(job, slots)),
                      range=frames, chunk=job.num_frames)
    matte = shell("matte", command=shlex.join(matte_argv(job, slots,
                                                         "#FRAME_START#-#FRAME_END#")),
                  range=frames, chunk=job.chunk)
    layers = [propagate, matte]
    if job.verify:
        layers.append(shell("verify", command=shlex.join(matte_argv(job, slots, frames,
                                                                    verify=True)),
                            range=frames, chunk=job.num_frames))
    layers.append(shell("qc", command=shlex.join(qc_argv(job, slots)), range=frames,
                        chunk=job.num_frames))
    for layer in layers:
        ol.add_layer(layer)
    for before, after in zip(layers, layers[1:], strict=False):
        after.depend_all(before)
    launcher = outline.cuerun.OutlineLauncher(ol, user=user, nomail=True,
                                              priority=job.priority)
    return _serialize_offline(outline, launcher)


def _serialize_offline(outline: Any, launcher: Any) -> str:
    """``launcher.serialize`` with pyoutline's session folder in a temporary directory."""
    config = outline.config
    previous = config.get("outline", "session_dir")
    with tempfile.TemporaryDirectory(prefix="actormatte-outline-") as sessions:
        config.set("outline", "session_dir", sessions)
        try:
            return str(launcher.serialize(use_pycuerun=False))
        finally:
            config.set("outline", "session_dir", previous)


def write(job: FarmJob, job_dir: Path, show: str, shot: str | None = None) -> list[Path]:
    """Write ``<job-dir>/opencue/job.xml``; return the paths written."""
    xml = spec_xml(job, show, shot)
    folder = job_dir / SPEC_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SPEC_FILE
    path.write_text(xml + "\n", encoding="utf-8")
    return [path]
