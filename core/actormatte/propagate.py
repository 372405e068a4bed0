"""The propagation stage driver: XMem over a shot, one ID map per frame, resumable.

Called by :func:`actormatte.pipeline.propagate`. The order of work:

1. **Backward pass** (when the first keyframe is after the first frame): a fresh XMem starts at the
   first keyframe with its masks and steps backwards over the earlier frames. The official eval
   skips those frames and writes nothing for them; a product must not leave them empty. Only the
   first keyframe's actors exist in this pass.
2. **Forward pass**: a fresh XMem from the first keyframe to the last frame. Later keyframes enter
   as in the official eval: ``set_all_labels`` with every label so far and ``valid_labels`` = the
   labels annotated in that keyframe.

XMem labels are 1..K in order of first appearance (keyframes by frame, then ascending actor id),
as the official label mapper numbers them; they are mapped back to actor ids for the ID maps.
Every frame is read, converted to 8-bit sRGB, normalised and resized to XMem's short side; the
probabilities come back to plate resolution (bilinear) and their argmax is written as
``<work>/masks/<frame>.png``. Every ``checkpoint_every`` frames the pass, the position and an XMem
snapshot go to ``<work>/checkpoint/state.pt`` (after the masks they cover), so a killed run
resumes there and writes the same masks as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actormatte.config import PropagateConfig
from actormatte.errors import InputError
from actormatte.jobs import Job, JobActor, WorkFolder, keyframes_digest
from actormatte.masks import KeyframeSet
from actormatte.propagation import (
    XMemConfig,
    XMemNet,
    XMemProcessor,
    normalise_frame,
    resize_for_xmem,
    resize_mask_to,
    upsample_prob,
    xmem_image_size,
)
from actormatte.shot import Shot

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "state.pt"

#: ``read(frame) -> (H, W, 3) uint8`` sRGB frame at plate resolution.
FrameReader = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class Pass:
    """One XMem pass: the frames it steps through, in step order, and which it writes."""

    name: str
    order: tuple[int, ...]
    writes_first: bool

    def written(self) -> list[int]:
        """Frames whose ID maps this pass writes."""
        return list(self.order if self.writes_first else self.order[1:])


def plan_passes(keyframes: KeyframeSet, first: int, last: int) -> list[Pass]:
    """The backward (if any) and forward passes over frames ``first .. last``."""
    start = keyframes.keyframes[0].frame
    passes = []
    if start > first:
        passes.append(Pass("backward", tuple(range(start, first - 1, -1)), writes_first=False))
    passes.append(Pass("forward", tuple(range(start, last + 1)), writes_first=True))
    return passes


def label_order(keyframes: KeyframeSet) -> list[int]:
    """Actor ids in XMem label order (label k = ``order[k - 1]``)."""
    order: list[int] = []
    for keyframe in keyframes.keyframes:
        order += [actor for actor in sorted(keyframe.masks) if actor not in order]
    return order


class Propagator:
    """Runs the passes for one shot and writes the ID maps.

    Args:
        network: The loaded XMem network.
        xmem_config: XMem settings (``for_shot`` is applied per pass).
        config: Stage knobs (size, checkpoint spacing).
        keyframes: Actors and keyframes.
        read: Frame reader giving 8-bit sRGB frames.
        work: The work folder.
        plate_size: (width, height).
        device: Torch device string.
    """

    def __init__(self, network: XMemNet, xmem_config: XMemConfig,
                 config: PropagateConfig, keyframes: KeyframeSet, read: FrameReader,
                 work: WorkFolder, plate_size: tuple[int, int], device: str) -> None:
        self._net = network
        self._xmem_config = xmem_config
        self._config = config
        self._keyframes = {k.frame: k for k in keyframes.keyframes}
        self._labels = label_order(keyframes)
        self._read = read
        self._work = work
        self._width, self._height = plate_size
        self._device = torch.device(device)
        self._size = xmem_image_size(self._height, self._width, config.size)

    def run(self, passes: list[Pass], identity: dict[str, Any],
            resume: bool) -> Iterator[tuple[int, bool]]:
        """Yield ``(plate frame, resumed)`` as each ID map is written or found from a checkpoint."""
        state = self._load_checkpoint(identity) if resume else None
        for pass_index, step_pass in enumerate(passes):
            position, snapshot = -1, None
            if state is not None:
                if state["pass"] > pass_index:
                    yield from ((frame, True) for frame in step_pass.written())
                    continue
                if state["pass"] == pass_index:
                    position, snapshot = state["position"], state["snapshot"]
            yield from self._run_pass(pass_index, step_pass, identity, position, snapshot)
        self.clear_checkpoint()

    def _run_pass(self, pass_index: int, step_pass: Pass, identity: dict[str, Any],
                  position: int, snapshot: Any) -> Iterator[tuple[int, bool]]:
        config = self._xmem_config.for_shot(len(step_pass.order))
        if snapshot is None:
            processor = XMemProcessor(self._net, config)
        else:
            processor = XMemProcessor.restore(self._net, config, snapshot)
            for frame in step_pass.order[:position + 1]:
                if frame != step_pass.order[0] or step_pass.writes_first:
                    yield frame, True
        seen: list[int] = self._labels_before(step_pass, position)
        for index in range(position + 1, len(step_pass.order)):
            frame = step_pass.order[index]
            end = index == len(step_pass.order) - 1
            annotated = index == 0 or (step_pass.name == "forward" and frame in self._keyframes)
            with torch.inference_mode():
                probs = self._step(processor, frame, annotated, seen, end)
            if index > 0 or step_pass.writes_first:
                self._work.write_mask(frame, self._to_ids(probs, seen))
                yield frame, False
            every = self._config.checkpoint_every
            if not end and (index + 1) % every == 0:
                self._save_checkpoint(identity, pass_index, index, processor.snapshot().to_dict())

    def _labels_before(self, step_pass: Pass, position: int) -> list[int]:
        """Actor ids (in label order) XMem knows after step ``position`` of a pass."""
        if position < 0:
            return []
        frames = step_pass.order[:position + 1]
        if step_pass.name == "backward":
            frames = frames[:1]
        annotated = {f for f in frames if f in self._keyframes}
        return [a for a in self._labels if any(a in self._keyframes[f].masks for f in annotated)]

    def _step(self, processor: XMemProcessor, frame: int, annotated: bool, seen: list[int],
              end: bool) -> torch.Tensor:
        """One XMem step; updates ``seen``. Shape: returns (K+1, h, w) probabilities."""
        image = self._image(frame)
        if not annotated:
            return processor.step(image, None, None, end=end)
        keyframe = self._keyframes[frame]
        new = [a for a in self._labels if a in keyframe.masks and a not in seen]
        seen.extend(new)
        processor.set_all_labels(list(range(1, len(seen) + 1)))
        masks = np.stack([keyframe.masks.get(a, np.zeros((self._height, self._width), bool))
                          for a in seen])  # (K, H, W)
        mask = self._resize_mask(torch.from_numpy(masks).float())
        valid = [seen.index(a) + 1 for a in keyframe.masks]
        return processor.step(image, mask, sorted(valid), end=end)

    def _image(self, frame: int) -> torch.Tensor:
        """Normalised frame at XMem's size. Shape: (3, h, w)."""
        image = normalise_frame(self._read(frame))  # (3, H, W) from (H, W, 3) uint8
        return resize_for_xmem(image, self._config.size).to(self._device)

    def _resize_mask(self, masks: torch.Tensor) -> torch.Tensor:
        """Keyframe masks to XMem's size (legacy nearest). Shape: (K, H, W) -> (K, h, w).

        The official eval computes the mask size with another rounding than the image size, and
        the two can differ by a pixel (XMem then fails); the masks take the image's size here.
        """
        return resize_mask_to(masks, self._size).to(self._device)

    def _to_ids(self, probs: torch.Tensor, seen: list[int]) -> np.ndarray:
        """Probabilities -> plate-resolution actor-id map. Shape: (K+1, h, w) -> (H, W)."""
        probs = upsample_prob(probs, (self._height, self._width))
        index = torch.max(probs, dim=0).indices.cpu().numpy()  # (H, W) label 0..K
        lookup = np.array([0, *seen], dtype=np.uint16)
        return lookup[index]

    def _save_checkpoint(self, identity: dict[str, Any], pass_index: int, position: int,
                         snapshot: dict[str, Any]) -> None:
        path = self._work.checkpoint_dir / CHECKPOINT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{CHECKPOINT_NAME}.{os.getpid()}.tmp")
        torch.save({"identity": identity, "pass": pass_index, "position": position,
                    "snapshot": snapshot}, tmp)
        os.replace(tmp, path)
        logger.info("checkpoint: pass %d, step %d", pass_index, position)

    def _load_checkpoint(self, identity: dict[str, Any]) -> dict[str, Any] | None:
        path = self._work.checkpoint_dir / CHECKPOINT_NAME
        if not path.is_file():
            return None
        try:
            state: dict[str, Any] = torch.load(path, map_location=self._device,
                                               weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged checkpoint only costs a restart
            logger.warning("ignoring unreadable checkpoint %s (%s); starting over", path, exc)
            return None
        if state.get("identity") != identity:
            logger.warning("checkpoint %s belongs to another job; starting over", path)
            return None
        logger.info("resuming propagation at pass %d, step %d", state["pass"], state["position"])
        return state

    def clear_checkpoint(self) -> None:
        """Remove the checkpoint (after a complete run or before a fresh one)."""
        (self._work.checkpoint_dir / CHECKPOINT_NAME).unlink(missing_ok=True)


def make_job(shot: Shot, keyframes: KeyframeSet, config: PropagateConfig,
             xmem_sha256: str) -> Job:
    """The job record of propagating ``keyframes`` over ``shot`` with ``config``."""
    actors = tuple(JobActor(a.name, a.id, keyframes.first_keyframe(a.id))
                   for a in keyframes.actors)
    digest = keyframes_digest([(k.frame, k.label_map()) for k in keyframes.keyframes])
    options = {"mem_every": config.mem_every, "max_mid_term_frames": config.max_mid_term_frames,
               "min_mid_term_frames": config.min_mid_term_frames}
    return Job(plate=shot.plate_path, start_frame=shot.start_frame, first=shot.first,
               last=shot.last, width=shot.plate.width, height=shot.plate.height,
               input_colorspace=shot.colorspace, actors=actors,
               keyframes=tuple(k.frame for k in keyframes.keyframes), keyframes_sha256=digest,
               xmem_size=config.size, xmem_options=options,
               xmem_sha256=xmem_sha256)


def work_state(work: WorkFolder, job: Job, overwrite: bool) -> str:
    """What to do with the work folder: ``fresh``, ``resume`` or ``complete`` (nothing to do).

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
    if existing.identity() != job.identity():
        changed = sorted(k for k, v in job.identity().items() if existing.identity().get(k) != v)
        raise InputError(f"--work {work.root} holds another propagation (differs in: "
                         f"{', '.join(changed)}); pass --overwrite to replace it, or choose "
                         "another --work folder")
    return "complete" if existing.complete else "resume"


def run_propagation(shot: Shot, keyframes: KeyframeSet, job: Job, work: WorkFolder,
                    network: XMemNet | None, config: PropagateConfig, device: str,
                    state: str) -> Iterator[tuple[int, bool]]:
    """Propagate (or resume) and yield ``(frame, resumed)`` per frame; marks the job complete.

    Args:
        shot: The opened plate and range.
        keyframes: Actors and keyframe masks.
        job: The job record (written first on a fresh start).
        work: The work folder.
        network: The XMem network (``None`` only when ``state`` is ``complete``).
        config: Stage knobs.
        device: Torch device string.
        state: From :func:`work_state`; ``complete`` needs no network.
    """
    passes = plan_passes(keyframes, shot.first, shot.last)
    if state == "complete":
        for step_pass in passes:
            yield from ((frame, True) for frame in step_pass.written())
        return
    assert network is not None, "propagation needs the XMem network"
    xmem_config = XMemConfig(mem_every=config.mem_every,
                             max_mid_term_frames=config.max_mid_term_frames,
                             min_mid_term_frames=config.min_mid_term_frames)
    propagator = Propagator(network, xmem_config, config, keyframes, shot.read_uint8, work,
                            (shot.plate.width, shot.plate.height), device)
    if state == "fresh":
        propagator.clear_checkpoint()
        work.write_job(job)
    yield from propagator.run(passes, job.identity(), resume=state == "resume")
    work.write_job(dataclasses.replace(job, complete=True))
