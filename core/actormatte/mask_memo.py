"""The ``run`` command's work folder: ID maps kept for the matte windows, written behind.

Called by :mod:`actormatte.pipeline` (``run`` only). ``run`` propagates and mattes in one
process, so :class:`MaskMemo` keeps each final ID map it writes while a matte window still needs
it (the windows read the very uint16 values the PNG holds instead of decoding the file) and
encodes + writes the PNG in a writer thread, off the propagation's critical path.

Every way to the file waits for it: :meth:`MaskMemo.mask_path` (the composer's compare, the
provenance digests, the damage checks) and :meth:`MaskMemo.read_mask` wait for that frame's
write, :meth:`MaskMemo.write_job` (the "complete" mark) and :meth:`MaskMemo.close` for all of
them. Each write is atomic, so a kill leaves a map complete or absent; a map lost that way is
rewritten by the resume, which composes every final map of the reused steps again from the
pass maps (written synchronously before their checkpoints).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from actormatte.checkpoints import disk_errors
from actormatte.jobs import Job, WorkFolder

logger = logging.getLogger(__name__)


class MaskMemo(WorkFolder):
    """A work folder that holds the ID maps a matte window needs and writes maps behind.

    At most ``capacity`` maps are held for the windows (the latest frames are dropped first
    and read from disk), at most ``depth`` writes are in flight.

    Args:
        root: The ``--work`` folder.
        capacity: Most ID maps held for the windows.
        depth: Most ID-map writes in flight (0: write in the caller's thread).
    """

    def __init__(self, root: str | Path, capacity: int = 12, depth: int = 4) -> None:
        super().__init__(root)
        self.keep: Callable[[int], bool] = lambda frame: False
        self._capacity = capacity
        self._depth = depth
        self._held: dict[int, np.ndarray] = {}
        self._pending: dict[int, tuple[Future[None], np.ndarray]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._in_writer = threading.local()
        self._lock = threading.Lock()  # _pending: the EXR writers' provenance reads it too

    def write_mask(self, frame: int, labels: np.ndarray, encoded: bytes | None = None) -> None:
        """Write one ID map behind (see :meth:`WorkFolder.write_mask`); hold it if needed.

        Raises:
            InputError: An earlier map's write found the disk full.
            OSError: An earlier map's write failed.
        """
        labels = np.array(labels, dtype=np.uint16)  # (H, W), a copy: the caller may reuse it
        self._wait(frame)
        if self._depth <= 0:
            self._write_now(frame, labels, encoded)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, "actormatte-idmap")
            with self._lock:
                self._pending[frame] = (
                    self._pool.submit(self._write_now, frame, labels, encoded), labels)
            while (oldest := self._oldest(self._depth)) is not None:
                self._wait(oldest)
        self._held.pop(frame, None)
        if self.keep(frame):
            self._held[frame] = labels
            for extra in sorted(self._held, reverse=True)[:len(self._held) - self._capacity]:
                del self._held[extra]

    def read_mask(self, frame: int, size: tuple[int, int]) -> np.ndarray:
        """One ID map, from memory when held (see :meth:`WorkFolder.read_mask`)."""
        labels = self._held.pop(frame, None)
        if labels is None:
            with self._lock:
                entry = self._pending.get(frame)
            labels = None if entry is None else entry[1]
        if labels is not None and (labels.shape[1], labels.shape[0]) == size:
            return labels
        return super().read_mask(frame, size)

    def mask_path(self, frame: int) -> Path:
        """The map's file, once its write (if one is in flight) has finished."""
        if not getattr(self._in_writer, "active", False):
            self._wait(frame)
        return super().mask_path(frame)

    def write_job(self, job: Job) -> None:
        """Wait for every map written so far, then write ``job.json``.

        A job marked complete has all its maps on disk.
        """
        self.flush()
        super().write_job(job)

    def flush(self) -> None:
        """Wait for every write in flight.

        Raises:
            InputError: A write found the disk full.
            OSError: A write failed.
        """
        while (oldest := self._oldest(0)) is not None:
            self._wait(oldest)

    def close(self) -> None:
        """Wait for the writes in flight, logging failures (the error path), stop the thread.

        Idempotent; the folder still works afterwards (writes restart the thread).
        """
        with self._lock:
            pending, self._pending = list(self._pending.items()), {}
        for frame, (future, _) in pending:
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - already failing; the first error wins
                logger.warning("the ID map of frame %d was not written: %s", frame, exc)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _oldest(self, allowed: int) -> int | None:
        """The oldest frame in flight when more than ``allowed`` are, else ``None``."""
        with self._lock:
            return next(iter(self._pending)) if len(self._pending) > allowed else None

    def _wait(self, frame: int) -> None:
        """Wait for ``frame``'s write (raising its error)."""
        with self._lock:
            entry = self._pending.get(frame)
        if entry is None:
            return
        try:
            entry[0].result()
        finally:
            with self._lock:
                if self._pending.get(frame) is entry:
                    del self._pending[frame]

    def _write_now(self, frame: int, labels: np.ndarray, encoded: bytes | None) -> None:
        self._in_writer.active = True
        try:
            with disk_errors(self.root):
                super().write_mask(frame, labels, encoded)
        finally:
            self._in_writer.active = False
