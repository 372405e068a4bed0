"""The propagation checkpoints of a work folder, kept per pass and position for corrections.

Written and read by :mod:`actormatte.propagate`. Layout under ``<work>/checkpoint``:

- ``<pass key>/<position>-<digest>.pt``: an XMem snapshot taken after step ``position`` of the
  pass (``{"position", "digest", "snapshot"}``), where ``digest`` is the pass's input digest at
  that step (:func:`step_digests`): everything the XMem state depends on up to and including it;
- ``<pass key>/done-<digest>``: an empty marker, the pass ran to its end with that final digest.

A checkpoint is reused only when its digest equals the digest the current keyframes give at its
position, so a keyframe added, changed or removed at frame K invalidates exactly the checkpoints
at and after K's step. At most ``keep`` checkpoints are kept per pass; beyond that they are thinned
far from the pass's end first (see :meth:`CheckpointStore._thin`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actormatte.errors import InputError

logger = logging.getLogger(__name__)

_CHECKPOINT_RE = re.compile(r"^(\d+)-([0-9a-f]{16})\.pt$")
_DIGEST_CHARS = 16
#: errno values that mean "the disk (or the quota) is full".
_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """Turn a full disk while writing ``path`` into an :class:`InputError` (exit 2) naming it.

    Raises:
        InputError: ``ENOSPC`` or ``EDQUOT`` inside the block.
    """
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if not _is_disk_full(exc):
            raise
        raise InputError(f"no space left on {path}: free space or use --work on another "
                         "disk") from exc


def _is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it arose from is ``ENOSPC``/``EDQUOT``.

    torch.save's zip writer turns the OSError of a full disk into a RuntimeError raised while
    handling it, so the chain is searched.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL:
            return True
        current = current.__cause__ or current.__context__
    return False


def step_digests(seed: dict[str, Any], frames: Sequence[int],
                 annotations: dict[int, dict[int, np.ndarray]]) -> list[str]:
    """The input digest after each step of a pass.

    Args:
        seed: What the whole pass depends on (the job's fixed identity, the pass key and
            length, the actors it contributes); JSON-serialisable.
        frames: Plate frames in step order.
        annotations: Step index -> actor id -> (H, W) bool mask, for the annotated steps.

    Returns:
        ``digests[i]`` covers the seed and steps ``0..i``.
    """
    digest = hashlib.sha256(json.dumps(seed, sort_keys=True).encode())
    out = []
    for index, frame in enumerate(frames):
        digest.update(f"|{frame}".encode())
        for actor, mask in sorted(annotations.get(index, {}).items()):
            digest.update(f":{actor}:{mask.shape}".encode())
            digest.update(np.packbits(np.ascontiguousarray(mask, dtype=bool)).tobytes())
        out.append(digest.copy().hexdigest()[:_DIGEST_CHARS])
    return out


class CheckpointStore:
    """The checkpoints of every pass of one work folder.

    Args:
        root: ``<work>/checkpoint``.
        keep: Most checkpoints kept per pass (1 or more).
    """

    def __init__(self, root: Path, keep: int) -> None:
        self.root = root
        self.keep = max(1, keep)

    def positions(self, key: str) -> dict[int, str]:
        """Position -> digest of the checkpoints stored for pass ``key``."""
        folder = self.root / key
        if not folder.is_dir():
            return {}
        found = {}
        for path in folder.iterdir():
            match = _CHECKPOINT_RE.match(path.name)
            if match:
                found[int(match.group(1))] = match.group(2)
        return found

    def is_done(self, key: str, digest: str) -> bool:
        """Whether pass ``key`` ran to its end with final digest ``digest``."""
        return (self.root / key / f"done-{digest}").is_file()

    def retain(self, key: str, digests: Sequence[str], upto: int) -> None:
        """Delete what does not belong to a pass resumed after step ``upto``.

        Removes the done marker, checkpoints after ``upto`` and checkpoints whose digest is not
        the current one at their position (their masks are about to be or were rewritten).
        """
        folder = self.root / key
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            match = _CHECKPOINT_RE.match(path.name)
            if path.name.startswith("done-") or path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
            elif match:
                position = int(match.group(1))
                if (position > upto or position >= len(digests)
                        or digests[position] != match.group(2)):
                    path.unlink(missing_ok=True)

    def load(self, key: str, position: int, digest: str, device: torch.device
             ) -> dict[str, Any] | None:
        """The snapshot saved at ``position``, or ``None`` if unreadable (logged)."""
        path = self._path(key, position, digest)
        try:
            state: dict[str, Any] = torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged checkpoint only costs recomputing
            logger.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
            path.unlink(missing_ok=True)
            return None
        if state.get("digest") != digest or state.get("position") != position:
            logger.warning("ignoring checkpoint %s: it does not hold what its name says", path)
            return None
        return state

    def save(self, key: str, position: int, digest: str, snapshot: dict[str, Any],
             steps: int) -> None:
        """Write a checkpoint atomically, then thin the pass to ``keep`` checkpoints.

        Args:
            key: The pass.
            position: The step the snapshot was taken after.
            digest: The pass's input digest at ``position``.
            snapshot: ``XMemState.to_dict()``.
            steps: The pass's length (thinning keeps checkpoints denser towards its end).

        Raises:
            InputError: The disk is full (the temporary file is removed).
        """
        path = self._path(key, position, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with disk_errors(path.parent):
                # Through a Python file: torch's own path writer reports a full disk as a
                # RuntimeError ("unexpected pos"), a file object raises OSError(ENOSPC).
                with open(tmp, "wb") as handle:
                    torch.save({"position": position, "digest": digest, "snapshot": snapshot},
                               handle)
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        logger.info("checkpoint: %s, step %d", key, position)
        self._thin(key, newest=position, steps=steps)

    def mark_done(self, key: str, digest: str) -> None:
        """Record that pass ``key`` ran to its end with final digest ``digest``."""
        folder = self.root / key
        with disk_errors(folder):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"done-{digest}").touch()

    def prune(self, keys: Sequence[str]) -> None:
        """Remove the checkpoints of passes not in ``keys`` (and any older layout's files)."""
        if not self.root.is_dir():
            return
        for path in self.root.iterdir():
            if path.name in keys:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove every checkpoint (a fresh start)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def _path(self, key: str, position: int, digest: str) -> Path:
        return self.root / key / f"{position:06d}-{digest}.pt"

    def _thin(self, key: str, newest: int, steps: int) -> None:
        """Drop checkpoints until ``keep`` remain, each time the cheapest one to lose.

        Removing checkpoint ``b`` between ``a`` and ``c`` makes a correction just before ``c``
        resume from ``a``: it then recomputes ``steps - a`` steps where it needed about
        ``steps - c``. The victim is the one whose new gap ``c - a`` is smallest relative to
        ``steps - c`` (what such a correction costs anyway), so checkpoints stay dense near the
        pass's end, where corrections are cheap and a gap weighs most, and thin far back. Never
        the newest (a killed run resumes there); ties drop the oldest.
        """
        stored = self.positions(key)
        while len(stored) > self.keep:
            ordered = sorted(stored)
            after = [*ordered[1:], newest]
            before = [-1, *ordered[:-1]]
            costs = [((c - a) / max(1, steps - c), b)
                     for a, b, c in zip(before, ordered, after, strict=True) if b != newest]
            _, victim = min(costs)
            self._path(key, victim, stored.pop(victim)).unlink(missing_ok=True)
