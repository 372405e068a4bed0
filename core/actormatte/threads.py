"""CPU thread count: pinned by ``--threads``, recorded in every output, checked across chunks.

Results on the CPU depend on the thread count, by design of the math libraries: oneDNN and MKL
split each convolution and matrix product into per-thread partial sums, and another split adds
the same numbers in another order (float32 rounding differs in the last bits). XMem amplifies
such differences: its top-k memory readout picks other memory entries where two affinities are
nearly tied, so a propagated ID map can differ by a few pixels, and MaGGIe's mattes by one half
ulp (~5e-4). Making every kernel thread-count invariant is not possible with these libraries, so
the promise "chunked equals one machine" holds **for one thread count** (docs/FARM.md, "Threads"):

- ``--threads N`` (``run``, ``propagate``, ``matte``; also ``ACTORMATTE_THREADS``) sets torch's
  intra-op threads before any work; ``actormatte farm`` always pins it (default
  :data:`FARM_THREADS`) in every task it writes, whatever the nodes' core counts.
- ``job.json`` records the propagation's count, every EXR header ``actormatte/threads``.
- :func:`check_output_threads` warns when a matte chunk runs with another count than the frames
  already written in the same output sequence (or than the propagation).

Called by :mod:`actormatte.cli.main` (:func:`apply_threads`), :mod:`actormatte.jobs` and
:mod:`actormatte.pipeline` (:func:`current_threads`, :func:`check_output_threads`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from actormatte.errors import InputError

logger = logging.getLogger(__name__)

#: Threads every farm task runs with unless ``actormatte farm --threads`` says otherwise.
FARM_THREADS = 8
#: Environment variable read when ``--threads`` is not given.
THREADS_ENV = "ACTORMATTE_THREADS"
METADATA_KEY = "threads"


def apply_threads(threads: int | None) -> int:
    """Set torch's CPU thread count from ``--threads`` or ``$ACTORMATTE_THREADS``.

    Returns:
        The thread count in effect.

    Raises:
        InputError: A count below 1 or a non-integer environment value.
    """
    import torch

    if threads is None and os.environ.get(THREADS_ENV):
        try:
            threads = int(os.environ[THREADS_ENV])
        except ValueError:
            raise InputError(f"${THREADS_ENV}={os.environ[THREADS_ENV]!r} is not a whole "
                             "number; set it to a thread count such as 8") from None
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads {threads}: use 1 or more")
        torch.set_num_threads(threads)
    return int(torch.get_num_threads())


def current_threads() -> int:
    """The CPU thread count torch uses now."""
    import torch

    return int(torch.get_num_threads())


def check_output_threads(out_dir: Path, name: str, propagated: int, device: str) -> None:
    """Warn when this process matting on the CPU uses another thread count than earlier work.

    Args:
        out_dir: Output folder.
        name: Output stem; a few EXRs already written there (other chunks) are looked at.
        propagated: The propagation's count from ``job.json`` (0: not recorded).
        device: Torch device of the matte stage (GPU runs are not affected).
    """
    if not device.startswith("cpu"):
        return
    mine = current_threads()
    existing = _some(out_dir.glob(f"{name}.*.exr"), 3)
    others = {int(v) for v in (_recorded(path) for path in existing) if v and v.isdigit()}
    others.discard(mine)
    if others:
        logger.warning("this matte runs with %d CPU threads but frames of this sequence were "
                       "written with %s: CPU results depend on the thread count, so chunks "
                       "may differ in the last bits; pass --threads %d (as the other chunks)",
                       mine, ", ".join(map(str, sorted(others))), min(others))
    elif propagated and propagated != mine:
        logger.info("matting with %d CPU threads, the propagation used %d", mine, propagated)


def _some(paths: Iterable[Path], count: int) -> list[Path]:
    chosen = []
    for path in paths:
        chosen.append(path)
        if len(chosen) == count:
            break
    return chosen


def _recorded(path: Path) -> str | None:
    """The ``actormatte/threads`` attribute of one EXR, or ``None``."""
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(str(path))
    if image is None:
        oiio.geterror()
        return None
    try:
        value = image.spec().getattribute(f"actormatte/{METADATA_KEY}")
    finally:
        image.close()
    return None if value is None else str(value)
