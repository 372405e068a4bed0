"""Per-frame QC records: a shot's ``qc.json`` assembled without re-reading unchanged frames.

Called by :mod:`actormatte.preview` (``preview``, ``run``'s QC, ``matte``'s QC and the farm's
final ``qc`` task). Each frame's measured figures (:class:`actormatte.qc.FrameFigures`) are kept
in ``<out>/preview/<name>/qc_frames/<frame>.json`` with the key they were measured from: the
identity (inode, mtime, size) of the frame's EXR and ID map, and of the previous frame's EXR
(the temporal change reads both). A record is used only when its key equals the files' current
key, so a frame re-matted by a correction or another farm chunk is measured again, with its
successor's change. Records are written atomically and independently per frame, so ``matte``
chunks running at the same time on different frames can each record theirs, and the last step
assembles the whole shot reading only frames whose record is missing or stale (at a chunk
boundary, the first frame of a chunk whose predecessor was written later).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actormatte.qc import FrameFigures, QCConfig, QCReport, measure

logger = logging.getLogger(__name__)

RECORDS_DIR = "qc_frames"
RECORD_VERSION = 1

#: ``read(frame) -> (alphas (N, H, W) float, propagated (N, H, W) bool or None)``.
FrameReader = Callable[[int], tuple[np.ndarray, np.ndarray | None]]
#: ``files(frame) -> (EXR path, ID map path or None)``.
FramePaths = Callable[[int], tuple[Path, Path | None]]


def file_stamp(path: Path | None) -> list[int] | None:
    """``[inode, mtime ns, size]`` of ``path`` (``None`` when absent): changes on every rewrite."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_ino, stat.st_mtime_ns, stat.st_size]


class QCRecords:
    """The per-frame records of one matte sequence.

    Args:
        folder: ``<out>/preview/<name>/qc_frames``.
        names: Actor names in actor order (part of every key).
    """

    def __init__(self, folder: Path, names: Sequence[str]) -> None:
        self.folder = folder
        self.names = list(names)

    def key(self, frame: int, paths: FramePaths, previous: int | None) -> dict[str, Any]:
        """What the record of ``frame`` depends on (``previous``: the frame before, or None)."""
        exr, ids = paths(frame)
        before = None if previous is None else [previous, file_stamp(paths(previous)[0])]
        return {"version": RECORD_VERSION, "actors": self.names, "exr": file_stamp(exr),
                "ids": file_stamp(ids), "previous": before}

    def get(self, frame: int, key: dict[str, Any]) -> FrameFigures | None:
        """The recorded figures of ``frame`` if measured from ``key``'s files, else None."""
        path = self._path(frame)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("key") != key:
                return None
            return FrameFigures.from_json(data["figures"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable QC record %s", path)
            return None

    def put(self, frame: int, key: dict[str, Any], figures: FrameFigures) -> None:
        """Record ``figures`` of ``frame`` (atomically: a temporary name, then a rename)."""
        if key["exr"] is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(frame)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps({"key": key, "figures": figures.to_json()}), encoding="utf-8")
        os.replace(temp, path)

    def _path(self, frame: int) -> Path:
        return self.folder / f"{frame}.json"


def assemble(frames: Sequence[int], records: QCRecords, paths: FramePaths, read: FrameReader,
             config: QCConfig, progress: Callable[[int, int, int], None] | None = None
             ) -> tuple[QCReport, int]:
    """The QC report of ``frames`` (sorted, consecutive in the sequence), from records if valid.

    A frame without a valid record is read (and its predecessor, for the temporal change, unless
    just read) and its record written.

    Returns:
        The report and how many frames were read and measured.
    """
    report = QCReport(list(records.names), config)
    previous: tuple[int, np.ndarray] | None = None
    measured = 0
    for done, frame in enumerate(frames, 1):
        before = frames[done - 2] if done > 1 else None
        key = records.key(frame, paths, before)
        figures = records.get(frame, key)
        if figures is None:
            alphas, propagated = read(frame)
            earlier = None
            if before is not None:
                earlier = (previous[1] if previous is not None and previous[0] == before
                           else read(before)[0])
            figures = measure(alphas, propagated, earlier)
            records.put(frame, key, figures)
            previous = (frame, alphas)
            measured += 1
        report.add_figures(frame, figures)
        if progress is not None:
            progress(done, len(frames), frame)
    return report, measured
