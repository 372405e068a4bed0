"""Frame-range splitting shared by every farm engine writer.

Called by :mod:`actormatte.farm.openjd`, :mod:`actormatte.farm.opencue` and
:mod:`actormatte.farm.deadline` (and their tests) so that the three engines agree on what a chunk
is: contiguous runs of ``chunk`` frames from the first frame, the last run shorter. This is the
split every engine makes itself from ``range`` + ``chunk size`` (OpenCue ``chunk``, Deadline
``ChunkSize``, the OpenJD ``TASK_CHUNKING`` extension with ``rangeConstraint: CONTIGUOUS``); the
writers use it for their summaries and checks, never to bake chunk lists into a job.
"""

from __future__ import annotations

from actormatte.errors import InputError


def format_range(first: int, last: int) -> str:
    """``A-B`` (or ``A`` for one frame), the form ``--frames`` and every engine read."""
    return str(first) if first == last else f"{first}-{last}"


def split_range(first: int, last: int, chunk: int) -> list[tuple[int, int]]:
    """Contiguous chunks of ``chunk`` frames covering ``first .. last``.

    Args:
        first: First frame.
        last: Last frame (inclusive).
        chunk: Frames per chunk (>= 1).

    Returns:
        ``[(first, first + chunk - 1), ...]``; the last chunk ends at ``last``.

    Raises:
        InputError: ``chunk`` < 1 or ``first > last``.
    """
    if chunk < 1:
        raise InputError(f"--chunk {chunk}: a chunk needs at least one frame; pass --chunk 1 "
                         "or more")
    if first > last:
        raise InputError(f"frames {first}-{last}: the first frame is after the last")
    return [(start, min(start + chunk - 1, last)) for start in range(first, last + 1, chunk)]
