"""Provenance keys of output frames: exactly what produced each matte, for resume.

Every matte EXR records ``actormatte/provenance`` = the sha256 (hex) of:

- the bytes of the propagated ID maps (``<work>/masks/<frame>.png``) of every frame the frame's
  result depends on: its owner window (``window5``: windows are independent) or, for the
  ``reference`` schedule (which carries a previous prediction from window to window), every frame
  from the first of the shot to the end of its owner window;
- the options that change pixels: models and their sha256, instance table, plate, input colour
  space, processing size, schedule, window, stride, resample and upsample modes, instance-group
  size (:func:`stage_options`). Software version strings are left out on purpose: an upgrade
  alone does not recompute a shot.

A re-run (``run`` or ``matte``) recomputes a frame when its file is missing, incomplete
(:meth:`~actormatte.export.exr.MatteWriter.is_complete`), or records another key (or none: files
from before keys existed); it reuses the rest and logs how many were stale. ``--overwrite``
recomputes everything.

API (the matte stage's ``split()`` calls it; the propagation driver relies on it so that
re-propagating only some frames re-mattes only the frames whose windows saw a changed ID map):

- :class:`FrameProvenance` (``key(frame)``, ``metadata(frame)`` for the writer);
- :func:`split_frames(frames, provenance, writer, overwrite) -> FrameSplit` (``todo``,
  ``reused``, ``stale``);
- :func:`recorded_key(path)` reads a file's key; :func:`provenance_for_stage(stage)` builds the
  provenance of a :class:`~actormatte.matte.MatteStage`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PROVENANCE_KEY = "provenance"
KEY_VERSION = "1"
_NOT_PIXELS = ("software", "version", "layers", PROVENANCE_KEY)


class FrameProvenance:
    """The provenance key of each output frame of one matte stage.

    Args:
        options: Options that change pixels (strings), see :func:`stage_options`.
        depends_on: ``frame -> plate frames`` whose ID maps the frame's matte depends on.
        mask_file: ``frame -> path`` of a propagated ID map.
    """

    def __init__(self, options: Mapping[str, str], depends_on: Callable[[int], Sequence[int]],
                 mask_file: Callable[[int], Path]) -> None:
        self._options = json.dumps({k: options[k] for k in sorted(options)}, sort_keys=True)
        self._depends_on = depends_on
        self._mask_file = mask_file
        self._mask_digests: dict[int, str] = {}
        self._keys: dict[int, str] = {}

    def key(self, frame: int) -> str:
        """The sha256 hex key of ``frame`` (computed once, cached)."""
        if frame not in self._keys:
            digest = hashlib.sha256(f"actormatte-provenance-{KEY_VERSION}\n".encode())
            digest.update(self._options.encode())
            for source in self._depends_on(frame):
                digest.update(f"\n{source}:{self._mask_digest(source)}".encode())
            self._keys[frame] = digest.hexdigest()
        return self._keys[frame]

    def metadata(self, frame: int) -> dict[str, str]:
        """The writer's extra metadata for ``frame``: ``{"provenance": key}``."""
        return {PROVENANCE_KEY: self.key(frame)}

    def _mask_digest(self, frame: int) -> str:
        if frame not in self._mask_digests:
            path = self._mask_file(frame)
            try:
                self._mask_digests[frame] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                self._mask_digests[frame] = "missing"
        return self._mask_digests[frame]


@dataclass
class FrameSplit:
    """What a re-run does with each frame of its range.

    Attributes:
        todo: Frames to compute (missing, incomplete, stale, or all with ``--overwrite``).
        reused: Frames complete on disk with the expected key.
        stale: The part of ``todo`` that was complete on disk but with another (or no) key.
    """

    todo: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)


def recorded_key(path: str | os.PathLike[str]) -> str | None:
    """The ``actormatte/provenance`` attribute of an EXR, or ``None``."""
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(os.fspath(path))
    if inp is None:
        oiio.geterror()
        return None
    try:
        value = inp.spec().getattribute(f"actormatte/{PROVENANCE_KEY}")
    finally:
        inp.close()
    return str(value) if value else None


def split_frames(frames: Iterable[int], provenance: FrameProvenance, writer: Any,
                 overwrite: bool) -> FrameSplit:
    """Sort ``frames`` into recompute and reuse (module docstring); logs the stale count.

    Args:
        frames: Plate frames of the range.
        provenance: The stage's keys.
        writer: The :class:`~actormatte.export.exr.MatteWriter` (``is_complete``, ``path_for``).
        overwrite: Recompute everything.
    """
    split = FrameSplit()
    for frame in frames:
        if overwrite or not writer.is_complete(frame):
            split.todo.append(frame)
        elif recorded_key(writer.path_for(frame)) != provenance.key(frame):
            split.todo.append(frame)
            split.stale.append(frame)
        else:
            split.reused.append(frame)
    if split.stale:
        logger.warning("%d frame(s) on disk were made from other inputs (ID maps, models or "
                       "options changed) and are recomputed: %s", len(split.stale),
                       _frames_text(split.stale))
    return split


def stage_options(metadata: Mapping[str, str], config: Any) -> dict[str, str]:
    """The pixel-changing options of a stage: the writer's metadata plus the matte config."""
    options = {k: v for k, v in metadata.items() if k not in _NOT_PIXELS}
    options.update({
        "config.size": str(config.size), "config.schedule": str(config.schedule),
        "config.window": str(config.window), "config.stride": str(config.stride),
        "config.max_instances": str(config.max_instances),
        "config.resample": str(getattr(config, "resample_mode", "official")),
        "config.upsample": str(getattr(config, "upsample", "bilinear")),
    })
    return options


def provenance_for_stage(stage: Any) -> FrameProvenance:
    """The :class:`FrameProvenance` of a :class:`~actormatte.matte.MatteStage`."""
    job = stage.job
    count = len(job.frames)

    def depends_on(frame: int) -> list[int]:
        win = stage.runner.owner(count, frame - job.first)
        start = 0 if stage.config.schedule == "reference" else win.start
        return [job.first + index for index in range(start, win.stop)]

    return FrameProvenance(stage_options(stage.writer.metadata, stage.config), depends_on,
                           stage.work.mask_path)


def _frames_text(frames: Sequence[int]) -> str:
    if len(frames) <= 8:
        return ", ".join(str(f) for f in frames)
    return f"{frames[0]} ... {frames[-1]}"
