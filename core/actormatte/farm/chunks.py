"""Frame-range splitting shared by every farm engine writer.

Called by :mod:`actormatte.cli.farm_cmd` (the task count it reports) and the farm tests. Jobs never
carry chunk lists: each engine splits ``range`` + ``chunk size`` itself. OpenCue (``chunk``) and
Deadline (``ChunkSize``) cut runs of ``chunk`` frames from the first frame, the last run shorter,
which is :func:`split_range`; OpenJD's ``TASK_CHUNKING`` (``defaultTaskCount``, ``CONTIGUOUS``)
makes as many chunks but balances their sizes (10 frames by 4: 4+3+3, not 4+4+2). Matte outputs do
not depend on where a range is cut.
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
