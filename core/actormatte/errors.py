"""The one exception hierarchy of ActorMatte, with the exit code each error maps to.

Every error a user can cause derives from :class:`ActorMatteError`. The CLI turns an error into an
``{"event": "error", ...}`` line and exits with :attr:`ActorMatteError.exit_code`; hosts show the
message as it is, so messages name the offending file, frame or flag and say what to do.
Exit codes follow CONVENTIONS.md: 0 success, 1 anything else, 2 bad input or usage, 3 out of GPU
memory, 4 missing or wrong weights, 5 cancelled.
"""

from __future__ import annotations

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
