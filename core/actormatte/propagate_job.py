"""The job record of a propagation and what a re-run does with an existing work folder.

Used by :mod:`actormatte.propagate` (and, through it, :mod:`actormatte.pipeline`). A job's identity
splits in two: the *fixed* part (plate, range, sizes, XMem options and weights) must match for a
work folder to be reused at all; the keyframes, their masks, the actors and the backfill switch
may change (a correction), and the passes then resume from their last checkpoint still valid.
"""

from __future__ import annotations

import logging
from typing import Any

from actormatte.config import PropagateConfig
from actormatte.errors import InputError
from actormatte.jobs import Job, JobActor, WorkFolder, keyframes_digest
from actormatte.masks import KeyframeSet
from actormatte.propagate_passes import id_map_intact, repair_masks
from actormatte.shot import Shot

logger = logging.getLogger(__name__)

#: Job fields a correction may change (see :func:`fixed_identity`).
_KEYFRAME_FIELDS = ("keyframes", "keyframes_sha256", "actors")


def make_job(shot: Shot, keyframes: KeyframeSet, config: PropagateConfig,
             xmem_sha256: str) -> Job:
    """The job record of propagating ``keyframes`` over ``shot`` with ``config``."""
    actors = tuple(JobActor(a.name, a.id, keyframes.first_keyframe(a.id))
                   for a in keyframes.actors)
    digest = keyframes_digest([(k.frame, k.label_map()) for k in keyframes.keyframes])
    options: dict[str, float] = {
        "mem_every": config.mem_every, "max_mid_term_frames": config.max_mid_term_frames,
        "min_mid_term_frames": config.min_mid_term_frames}
    if not config.backfill:
        options["backfill"] = 0
    if shot.plate.pixel_aspect != 1.0:  # XMem sees the squared picture: another propagation
        options["pixel_aspect"] = shot.plate.pixel_aspect
    return Job(plate=shot.plate_path, start_frame=shot.start_frame, first=shot.first,
               last=shot.last, width=shot.plate.width, height=shot.plate.height,
               input_colorspace=shot.colorspace, actors=actors,
               keyframes=tuple(k.frame for k in keyframes.keyframes), keyframes_sha256=digest,
               xmem_size=config.size, xmem_options=options,
               xmem_sha256=xmem_sha256)


def fixed_identity(job: Job) -> dict[str, Any]:
    """The part of the job's identity a correction keeps: everything but the keyframes.

    Keyframes, their masks, the actors and the backfill switch may change between runs on one
    work folder (the passes then resume from their last checkpoint still valid); anything else
    (plate, range, sizes, XMem options and weights) makes it another propagation.
    """
    identity = job.identity()
    for name in _KEYFRAME_FIELDS:
        identity.pop(name, None)
    identity["xmem_options"] = {k: v for k, v in identity.get("xmem_options", {}).items()
                                if k != "backfill"}
    return identity


def work_state(work: WorkFolder, job: Job, overwrite: bool) -> str:
    """What to do with the work folder.

    Returns:
        ``fresh`` (start over), ``correct`` (same shot, other keyframes: resume each pass from
        its last valid checkpoint), ``resume`` (incomplete, or a propagated mask is damaged)
        or ``complete`` (nothing to do).

    Raises:
        InputError: The folder holds another job and ``overwrite`` is off.
    """
    if overwrite or not work.job_path.is_file():
        return "fresh"
    try:
        existing = work.read_job()
    except InputError:
        raise InputError(f"--work {work.root}: {work.job_path} is unreadable; pass --overwrite "
                         "to start the propagation over") from None
    old, new = fixed_identity(existing), fixed_identity(job)
    if old != new:
        changed = sorted(k for k, v in new.items() if old.get(k) != v)
        raise InputError(f"--work {work.root} holds another propagation (differs in: "
                         f"{', '.join(changed)}); pass --overwrite to replace it, or choose "
                         "another --work folder")
    if existing.identity() != job.identity():
        logger.info("keyframes changed since the last run; re-propagating what they affect")
        return "correct"
    if not existing.complete:
        return "resume"
    damaged = damaged_masks(work, job)
    if not damaged:
        return "complete"
    if repair_masks(work, job, damaged):
        logger.warning("the propagated masks of frames %s were damaged; recomposed them from "
                       "the passes' own ID maps", _frames_text(damaged))
        return "complete"
    logger.warning("the propagated masks of frames %s are damaged; re-propagating them from "
                   "the last good checkpoint", _frames_text(damaged))
    return "resume"


def damaged_masks(work: WorkFolder, job: Job) -> list[int]:
    """Frames whose ``<work>/masks`` ID map is missing, damaged or of another size.

    Checked without decoding (:func:`~actormatte.propagate_passes.id_map_intact`).
    """
    size = (job.width, job.height)
    return [frame for frame in job.frames if not id_map_intact(work.mask_path(frame), size)]


def _frames_text(frames: list[int]) -> str:
    return ", ".join(map(str, frames)) if len(frames) <= 8 else f"{frames[0]} ... {frames[-1]}"
