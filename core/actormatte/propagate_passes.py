"""The passes of a propagation and the composition of their ID maps into ``<work>/masks``.

Used by :mod:`actormatte.propagate` (the XMem driver) and :mod:`actormatte.propagate_job`
(repairing a damaged final ID map without XMem). Each pass writes its own ID maps under
``<work>/passes/<pass key>/masks``; the final map of a frame is its base pass's (backward or
forward) with the late actors of the backfill passes filled into its background.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actormatte.checkpoints import disk_errors
from actormatte.errors import InputError
from actormatte.jobs import Job, WorkFolder, encode_id_map
from actormatte.masks import KeyframeSet

#: ``<work>/passes/<pass key>/masks/<frame>.png``: each pass's own ID maps.
PASSES_DIR = "passes"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Pass:
    """One XMem pass: the frames it steps through, in step order, and which it writes.

    Attributes:
        name: ``backward`` or ``forward`` (the base passes, which cover every frame once) or
            ``backfill`` (late actors, backwards from their keyframe).
        order: Plate frames in step order; the first is the keyframe the pass starts from.
        writes_first: Whether the pass writes the ID map of its first frame.
        owned: Backfill passes: the actor ids they add to the final ID maps.
    """

    name: str
    order: tuple[int, ...]
    writes_first: bool
    owned: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        """The pass's folder name under ``checkpoint/`` and ``passes/``."""
        return f"{self.name}-{self.order[0]}"

    def written(self) -> list[int]:
        """Frames whose ID maps this pass writes."""
        return list(self.order if self.writes_first else self.order[1:])


def plan_passes(keyframes: KeyframeSet, first: int, last: int,
                backfill: bool = True) -> list[Pass]:
    """The passes over frames ``first .. last`` in run order: backfills, backward, forward."""
    first_keyframe = {a.id: keyframes.first_keyframe(a.id) for a in keyframes.actors}
    return _plan([k.frame for k in keyframes.keyframes], first_keyframe, first, last, backfill)


def passes_of_job(job: Job) -> list[Pass]:
    """The passes a job ran (what :func:`plan_passes` gave for its keyframes)."""
    first_keyframe = {a.id: a.keyframe for a in job.actors}
    backfill = bool(job.xmem_options.get("backfill", 1))
    return _plan(list(job.keyframes), first_keyframe, job.first, job.last, backfill)


def _plan(keyframes: list[int], first_keyframe: dict[int, int], first: int, last: int,
          backfill: bool) -> list[Pass]:
    """Passes from the keyframe frames and each actor's first keyframe."""
    start = keyframes[0]
    passes = []
    for frame in keyframes[1:]:
        new = tuple(sorted(a for a, k in first_keyframe.items() if k == frame))
        if backfill and new:
            passes.append(Pass("backfill", tuple(range(frame, first - 1, -1)),
                               writes_first=False, owned=new))
    if start > first:
        passes.append(Pass("backward", tuple(range(start, first - 1, -1)), writes_first=False))
    passes.append(Pass("forward", tuple(range(start, last + 1)), writes_first=True))
    return passes


def pass_folder(work: WorkFolder, step_pass: Pass) -> WorkFolder:
    """The folder of one pass's own ID maps (``masks/`` under ``<work>/passes/<key>``)."""
    return WorkFolder(work.root / PASSES_DIR / step_pass.key)


def compose_mask(work: WorkFolder, frame: int, base: Pass, ids: np.ndarray | None,
                 backfills: list[Pass], size: tuple[int, int], verified: bool = True,
                 encoded: bytes | None = None) -> None:
    """Write ``<work>/masks/<frame>.png`` from the passes covering ``frame`` if it changed.

    The base pass's map, then each backfill pass that covers the frame (keyframe order):
    pixels still background where it found one of its own actors take that actor, so a late
    actor never changes the actors propagated from earlier keyframes.

    Args:
        work: The work folder.
        frame: Plate frame.
        base: The base pass (backward or forward) that writes ``frame``.
        ids: The base pass's map when just computed, else ``None`` (read back).
        backfills: Every backfill pass of the plan.
        size: Plate (width, height).
        verified: The base pass's map is known readable, so a final map with the same bytes
            is good without decoding it.
        encoded: The PNG bytes of ``ids`` when the caller has them (the pass map just
            written): the map is then encoded once for both files.

    Shape:
        ids: (H, W) actor ids.

    Raises:
        InputError: A pass's own map is unreadable, or the disk is full.
    """
    layers = [p for p in backfills if frame < p.order[0]]
    own = pass_folder(work, base).mask_path(frame)
    final = work.mask_path(frame)
    if verified and ids is None and not layers and _same_bytes(own, final):
        return
    if ids is None:
        ids = pass_folder(work, base).read_mask(frame, size)
        encoded = None
    for layer in layers:
        extra = pass_folder(work, layer).read_mask(frame, size)
        ids = np.where((ids == 0) & np.isin(extra, layer.owned), extra, ids)
        encoded = None
    if final.is_file():  # an unchanged final map is not rewritten (its time stays)
        encoded = encode_id_map(ids, frame) if encoded is None else encoded
        if final.read_bytes() == encoded:
            return
    with disk_errors(work.root):
        work.write_mask(frame, ids, encoded)


def repair_masks(work: WorkFolder, job: Job, frames: list[int]) -> bool:
    """Recompose damaged final ID maps from the passes' own maps (no XMem step).

    Returns:
        Whether every frame was repaired (``False``: a pass map is damaged too; the passes
        must then be resumed, which recomputes it from the last good checkpoint).
    """
    passes = passes_of_job(job)
    backfills = [p for p in passes if p.name == "backfill"]
    owner = {f: p for p in passes if p.name != "backfill" for f in p.written()}
    try:
        for frame in frames:
            compose_mask(work, frame, owner[frame], None, backfills, (job.width, job.height),
                         verified=False)
    except InputError:
        return False
    return True


def id_map_intact(path: Path, size: tuple[int, int]) -> bool:
    """Whether ``path`` is a whole 16-bit grey PNG of ``size`` (width, height), without decoding.

    Walks the chunks and checks each CRC-32, the header and the final IEND: a truncated file or
    flipped bits fail, at a cost of reading the (small, compressed) file instead of inflating a
    full-resolution map (a 4K ID map: ~34 kB to read against ~17 MB to inflate).
    """
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if not data.startswith(_PNG_SIGNATURE):
        return False
    offset, first = len(_PNG_SIGNATURE), True
    while offset + 12 <= len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        body = data[offset + 4:offset + 8 + length]
        crc = data[offset + 8 + length:offset + 12 + length]
        if len(body) != length + 4 or len(crc) != 4 or zlib.crc32(body) != int.from_bytes(
                crc, "big"):
            return False
        kind, payload = body[:4], body[4:]
        if first and (kind != b"IHDR" or length != 13
                      or _ihdr_size(payload) != (*size, 16, 0)):
            return False
        if kind == b"IEND":
            return offset + 12 + length == len(data)
        offset, first = offset + 12 + length, False
    return False


def _ihdr_size(payload: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) of an IHDR chunk."""
    return (int.from_bytes(payload[0:4], "big"), int.from_bytes(payload[4:8], "big"),
            payload[8], payload[9])


def _same_bytes(a: Path, b: Path) -> bool:
    """Whether two files exist with identical contents."""
    try:
        return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()
    except OSError:
        return False
