"""The one exception hierarchy of ActorMatte, with the exit code each error maps to.

Every error a user can cause derives from :class:`ActorMatteError`. The CLI turns an error into an
``{"event": "error", ...}`` line and exits with :attr:`ActorMatteError.exit_code`; hosts show the
message as it is, so messages name the offending file, frame or flag and say what to do.
Exit codes follow CONVENTIONS.md: 0 success, 1 anything else, 2 bad input or usage, 3 out of GPU
memory, 4 missing or wrong weights, 5 cancelled.
"""

from __future__ import annotations

import errno
import os

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_GPU_MEMORY = 3
EXIT_WEIGHTS = 4
EXIT_CANCELLED = 5


class ActorMatteError(Exception):
    """Root of every ActorMatte error; unexpected failures map to exit code 1."""

    exit_code: int = EXIT_FAILURE


class InputError(ActorMatteError):
    """Bad user input: a plate, a mask, a flag or an output folder that cannot be used."""

    exit_code = EXIT_BAD_INPUT


class DiskFullError(InputError):
    """The disk (or quota) of an output or work file is full; free space or write elsewhere."""


def no_space_error(folder: str | os.PathLike[str], exc: BaseException,
                   needed: int = 0) -> DiskFullError | None:
    """A :class:`DiskFullError` when ``exc`` (raised writing into ``folder``) means a full disk.

    Python's ``OSError`` carries ``ENOSPC``/``EDQUOT``; libraries that only report "write failed"
    (OpenEXR through OpenImageIO) are recognised by the folder's free space: less than ``needed``
    bytes plus 1 MiB left.

    Returns:
        The error to raise, or ``None`` when the disk is not the cause.
    """
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not full:
        try:
            stat = os.statvfs(folder)
        except (OSError, AttributeError):  # no statvfs on Windows
            return None
        full = stat.f_bavail * stat.f_frsize < needed + (1 << 20)
    if not full:
        return None
    return DiskFullError(f"no space left on the disk of {folder}; free some space there (or "
                         "raise the quota), or write to another folder, then run the same "
                         "command again: finished frames stay and are skipped")


class ShapeError(InputError):
    """A tensor or image given to a public entry point has the wrong shape or dtype."""


class DependencyError(ActorMatteError):
    """An optional dependency (spconv, onnxruntime, OpenColorIO, CUDA) is missing."""

    exit_code = EXIT_BAD_INPUT


class WeightsError(ActorMatteError):
    """Model weights are missing, corrupt or do not match the architecture."""

    exit_code = EXIT_WEIGHTS


class GPUMemoryError(ActorMatteError):
    """The GPU ran out of memory; retry with a smaller processing size or on the CPU."""

    exit_code = EXIT_GPU_MEMORY


class CancelledError(ActorMatteError):
    """The user or the host cancelled the job; finished frames stay on disk."""

    exit_code = EXIT_CANCELLED
