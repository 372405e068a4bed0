"""Streaming helpers of the pipeline: a bounded frame store with read-ahead, a write-behind pool.

Called by :mod:`actormatte.pipeline` (and the stage drivers through :class:`~actormatte.shot.Shot`):

- :class:`FrameStore` decodes and colour-converts each plate frame once for every stage of the
  process. Frames are decoded ahead, in the order the reader will ask for them, by worker
  threads; a frame stays after it is read only while a later consumer (matte windows still to
  run) needs it, and never more than ``capacity`` frames are held, so memory does not depend on
  the shot's length.
- :class:`WriteBehind` runs file writes (EXRs) in worker threads and hands the finished ones back
  in submission order, at most ``depth`` in flight; :meth:`WriteBehind.close` always waits for
  what was submitted, so an error or a cancel leaves complete files only (each write is atomic).
- :func:`io_workers` sizes both pools and OpenImageIO's own thread count from the CPU count.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from actormatte.errors import InputError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``decode(frame) -> (H, W, 3) uint8``: one plate frame, decoded and converted.
Decode = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class IoWorkers:
    """Thread counts of one process.

    Attributes:
        read: Read-ahead workers (decode + colour conversion).
        write: Write-behind workers (EXR encode + fsync).
        oiio: Threads OpenImageIO may use inside one decode or encode.
        depth: Frames decoded ahead of the reader.
    """

    read: int
    write: int
    oiio: int
    depth: int


def io_workers(cpu_count: int | None = None) -> IoWorkers:
    """Pool sizes for ``cpu_count`` CPUs (default: the ones this process may use).

    IO gets half the cores (at least two threads: one reader, one writer), torch the rest.
    Decoding (EXR, OCIO) costs about twice the writing, so readers get two thirds of the IO
    threads. OpenImageIO decodes and encodes with its own thread pool: each IO worker may use
    its share of the IO half, so IO never runs more threads than that half.
    """
    if cpu_count is None:
        try:
            cpu_count = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpu_count = os.cpu_count() or 1
    share = max(2, cpu_count // 2)
    read = max(1, share // 3)
    write = max(1, share // 6)
    oiio = max(1, share // (read + write))
    return IoWorkers(read=read, write=write, oiio=oiio, depth=2 * read + 1)


def set_oiio_threads(threads: int) -> None:
    """Limit OpenImageIO's internal thread pool (per decode or encode) to ``threads``."""
    import OpenImageIO as oiio

    oiio.attribute("threads", threads)
    oiio.attribute("exr_threads", threads)


class FrameStore:
    """Each plate frame decoded once: read-ahead in ``order``, held while ``keep`` says so.

    Args:
        decode: Decodes and converts one frame.
        order: The frames the reader will ask for, in that order (repeats allowed).
        keep: Whether a frame is still needed after it was read (default: never).
        capacity: Most frames held at once (read-ahead included).
        depth: Frames decoded ahead of the reader (0: no read-ahead thread).
        workers: Read-ahead threads.
        resume_hint: Appended to a decode error's message (how to resume after fixing it).
    """

    def __init__(self, decode: Decode, order: Sequence[int],
                 keep: Callable[[int], bool] | None = None, *, capacity: int = 12,
                 depth: int = 2, workers: int = 1, resume_hint: str = "") -> None:
        self._decode = decode
        self._order = list(order)
        self.keep: Callable[[int], bool] = keep or (lambda frame: False)
        self._capacity = max(capacity, depth + 1)
        self._depth = depth
        self._hint = resume_hint
        self._cursor = 0
        self._held: dict[int, np.ndarray] = {}
        self._pending: dict[int, Future[np.ndarray]] = {}
        self._pool = ThreadPoolExecutor(workers, "actormatte-read") if depth > 0 else None
        self._lock = threading.RLock()
        self.decoded = 0

    def get(self, frame: int) -> np.ndarray:
        """The frame as 8-bit sRGB. Shape: (H, W, 3) uint8.

        Raises:
            InputError: The frame does not decode (names it, and how to resume).
        """
        with self._lock:
            self._advance(frame)
            rgb = self._held.get(frame)
            if rgb is None:
                future = self._pending.pop(frame, None)
                try:
                    rgb = future.result() if future is not None else self._decode_counted(frame)
                except InputError as exc:
                    raise InputError(f"{exc}{self._hint}") from exc
                self._held[frame] = rgb
            self._prefetch()
            self.trim()
            return rgb

    def trim(self) -> None:
        """Drop the frames nobody needs any more, then the latest ones past ``capacity``."""
        with self._lock:
            self._trim()

    def _trim(self) -> None:
        upcoming = self._upcoming()
        for frame in [f for f in self._held if f not in upcoming and not self.keep(f)]:
            del self._held[frame]
        excess = len(self._held) + len(self._pending) - self._capacity
        for frame in sorted((f for f in self._held if f not in upcoming), reverse=True):
            if excess <= 0:
                break
            del self._held[frame]
            excess -= 1

    def held(self) -> list[int]:
        """Frames held now (for tests and logs)."""
        return sorted(self._held)

    def close(self) -> None:
        """Stop reading ahead and drop every frame (idempotent)."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._held.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _decode_counted(self, frame: int) -> np.ndarray:
        self.decoded += 1
        return self._decode(frame)

    def _advance(self, frame: int) -> None:
        """Move the cursor to the next position of ``frame`` in the order, if it has one."""
        for position in range(self._cursor, len(self._order)):
            if self._order[position] == frame:
                self._cursor = position + 1
                return

    def _upcoming(self) -> set[int]:
        return set(self._order[self._cursor:self._cursor + self._depth])

    def _prefetch(self) -> None:
        if self._pool is None:
            return
        room = self._capacity - len(self._held) - len(self._pending)
        for frame in self._order[self._cursor:self._cursor + self._depth]:
            if room <= 0:
                break
            if frame in self._held or frame in self._pending:
                continue
            self._pending[frame] = self._pool.submit(self._decode, frame)
            self.decoded += 1
            room -= 1


class WriteBehind(Generic[T]):
    """File writes in worker threads, finished ones handed back in submission order.

    Args:
        workers: Writer threads (0: write in the caller's thread).
        depth: Most writes in flight; :meth:`submit` waits for the oldest past that.
    """

    def __init__(self, workers: int = 1, depth: int = 2) -> None:
        self._pool = ThreadPoolExecutor(workers, "actormatte-write") if workers > 0 else None
        self._depth = max(1, depth)
        self._queue: deque[tuple[int, Future[T]]] = deque()

    def submit(self, key: int, write: Callable[[], T]) -> Iterator[tuple[int, T]]:
        """Start ``write``; yields ``(key, result)`` of the writes that finished, in order.

        Raises:
            Exception: What a finished write raised (the writes after it still complete).
        """
        future: Future[T] = Future()
        if self._pool is None:
            future.set_result(write())
        else:
            future = self._pool.submit(write)
        self._queue.append((key, future))
        while self._queue and (len(self._queue) > self._depth or self._queue[0][1].done()):
            yield self._pop()

    def drain(self) -> Iterator[tuple[int, T]]:
        """Wait for every write; yields ``(key, result)`` in submission order."""
        while self._queue:
            yield self._pop()

    def close(self) -> list[tuple[int, T]]:
        """Wait for the writes in flight (their files complete); the ones that succeeded.

        For the error path: a failed write is logged, not raised (the first error wins).
        Idempotent.
        """
        finished = []
        while self._queue:
            key, future = self._queue.popleft()
            try:
                finished.append((key, future.result()))
            except Exception as exc:  # noqa: BLE001 - already failing; the first error wins
                logger.warning("a write failed while stopping: %s", exc)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return finished

    def _pop(self) -> tuple[int, T]:
        key, future = self._queue.popleft()
        return key, future.result()
