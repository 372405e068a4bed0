"""The propagation stage driver: XMem over a shot, one ID map per frame, resumable.

Called by :func:`actormatte.pipeline.propagate`. The order of work:

1. **Backward pass** (when the first keyframe is after the first frame): a fresh XMem starts at the
   first keyframe with its masks and steps backwards over the earlier frames. The official eval
   skips those frames and writes nothing for them; a product must not leave them empty. Only the
   first keyframe's actors exist in this pass.
2. **Forward pass**: a fresh XMem from the first keyframe to the last frame. Later keyframes enter
   as in the official eval: ``set_all_labels`` with every label so far and ``valid_labels`` = the
   labels annotated in that keyframe.

3. **Backfill passes** (``PropagateConfig.backfill``, on by default): for every later keyframe
   that brings actors not annotated before (late actors), a fresh XMem starts there with that
   keyframe's masks and steps backwards to the first frame, so a late actor is not empty
   before their keyframe. They run first; their actors fill the background of the earlier
   frames' ID maps (never another actor's pixels), see :meth:`Propagator.compose`.

XMem labels are 1..K in order of first appearance (keyframes by frame, then ascending actor id),
as the official label mapper numbers them (backward passes: ascending id); they are mapped back
to actor ids for the ID maps. Every frame is read, converted to 8-bit sRGB, normalised and
resized to XMem's short side; the probabilities come back to plate resolution (bilinear) and their
argmax is written as the pass's own ID map ``<work>/passes/<pass key>/masks/<frame>.png``; the
final ``<work>/masks/<frame>.png`` is composed from the passes covering the frame.

Before every plate frame that is a multiple of ``checkpoint_every`` an XMem snapshot goes to
``<work>/checkpoint/<pass key>/`` (after the masks it covers), named by the digest of every input
up to that step (:mod:`actormatte.checkpoints`), and up to ``checkpoint_keep`` of them are kept
after the run (denser towards the pass's end). The transformed Winograd filters are saved once
per weights in a per-machine cache (:mod:`actormatte.propagation.filter_cache`), so a
correction's process does not transform them again.
A killed run, a correction (a keyframe added, changed or removed at frame K) or a damaged ID map
resumes each pass from its last checkpoint whose digest still matches and whose ID maps are
readable: the result is bit-identical to a full run, and nothing before it is recomputed.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actormatte.checkpoints import CheckpointStore, disk_errors, step_digests
from actormatte.config import PropagateConfig
from actormatte.jobs import Job, WorkFolder, encode_id_map
from actormatte.masks import KeyframeSet
from actormatte.progress import CancelToken
from actormatte.propagate_job import (  # noqa: F401 - re-exported for the pipeline
    damaged_masks,
    fixed_identity,
    make_job,
    work_state,
)
from actormatte.propagate_passes import (  # noqa: F401 - plan_passes re-exported
    PASSES_DIR,
    Pass,
    compose_mask,
    id_map_intact,
    pass_folder,
    plan_passes,
)
from actormatte.propagation import (
    XMemConfig,
    XMemNet,
    XMemProcessor,
    filter_cache,
    resize_mask_to,
    upsample_prob,
    xmem_image_size,
)
from actormatte.propagation.preprocess import prepare_xmem_frame
from actormatte.shot import Shot

logger = logging.getLogger(__name__)


#: ``read(frame) -> (H, W, 3) uint8`` sRGB frame at plate resolution.
FrameReader = Callable[[int], np.ndarray]


def label_order(keyframes: KeyframeSet) -> list[int]:
    """Actor ids in XMem label order (label k = ``order[k - 1]``)."""
    order: list[int] = []
    for keyframe in keyframes.keyframes:
        order += [actor for actor in sorted(keyframe.masks) if actor not in order]
    return order


class Propagator:
    """Runs the passes for one shot, writes each pass's ID maps and composes the final ones.

    Args:
        network: The loaded XMem network.
        xmem_config: XMem settings (``for_shot`` is applied per pass).
        config: Stage knobs (size, checkpoint spacing and count).
        keyframes: Actors and keyframes.
        read: Frame reader giving 8-bit sRGB frames.
        work: The work folder.
        plate_size: (width, height).
        device: Torch device string.
        pixel_aspect: The plate's pixel aspect; XMem sees the squared picture.
    """

    def __init__(self, network: XMemNet, xmem_config: XMemConfig,
                 config: PropagateConfig, keyframes: KeyframeSet, read: FrameReader,
                 work: WorkFolder, plate_size: tuple[int, int], device: str,
                 pixel_aspect: float = 1.0) -> None:
        self._net = network
        self._xmem_config = xmem_config
        self._config = config
        self._keyframes = {k.frame: k for k in keyframes.keyframes}
        self._labels = label_order(keyframes)
        self._read = read
        self._work = work
        self._width, self._height = plate_size
        self._device = torch.device(device)
        self._pixel_aspect = pixel_aspect
        self._size = xmem_image_size(self._height, self._width, config.size, pixel_aspect)
        self._store = CheckpointStore(work.checkpoint_dir, config.checkpoint_keep)

    def run(self, passes: list[Pass], identity: dict[str, Any],
            cancel: CancelToken | None = None) -> Iterator[tuple[int, bool]]:
        """Yield ``(plate frame, reused)`` as each final ID map is composed.

        Args:
            passes: From :func:`plan_passes`.
            identity: The job's fixed identity (:func:`fixed_identity`), in every digest.
            cancel: Checked at every step of the backfill passes, which yield nothing (the
                caller checks its own token after each yielded frame).

        Raises:
            CancelledError: ``cancel`` was set during a backfill pass.
        """
        filters = self._filters_path(identity)
        installed = 0 if filters is None else filter_cache.load(self._net, filters)
        backfills = [p for p in passes if p.name == "backfill"]
        computed: set[int] = set()
        for step_pass in backfills:
            logger.info("backfill pass from keyframe %d (actors %s)", step_pass.order[0],
                        list(step_pass.owned))
            for frame, ids, _ in self._run_pass(step_pass, identity):
                if ids is not None:
                    computed.add(frame)
                if cancel is not None:
                    cancel.check()
        for step_pass in passes:
            if step_pass.name == "backfill":
                continue
            for frame, ids, encoded in self._run_pass(step_pass, identity):
                self.compose(frame, step_pass, ids, backfills, encoded)
                yield frame, ids is None and frame not in computed
        if filters is not None and filter_cache.count(self._net) > installed:
            self._save_filters(filters)
        keys = [p.key for p in passes]
        self._store.prune(keys)
        passes_dir = self._work.root / PASSES_DIR
        if passes_dir.is_dir():
            for folder in passes_dir.iterdir():
                if folder.name not in keys:
                    shutil.rmtree(folder, ignore_errors=True)

    def _save_filters(self, path: Path) -> None:
        """Save the transformed filters to the cache (a failure is logged: it is a cache)."""
        try:
            filter_cache.save(self._net, path)
        except OSError as exc:
            logger.warning("could not save the XMem filter cache %s (%s)", path, exc)

    def _filters_path(self, identity: dict[str, Any]) -> Path | None:
        """The cached transformed Winograd filters of these weights (CPU only, else None)."""
        if self._device.type != "cpu":
            return None
        return filter_cache.cache_path(filter_cache.cache_dir(),
                                       str(identity.get("xmem_sha256", "")))

    def compose(self, frame: int, base: Pass, ids: np.ndarray | None,
                backfills: list[Pass], encoded: bytes | None = None) -> None:
        """Write the final ID map of ``frame`` (see :func:`compose_mask`)."""
        compose_mask(self._work, frame, base, ids, backfills, (self._width, self._height),
                     encoded=encoded)

    def pass_folder(self, step_pass: Pass) -> WorkFolder:
        """The folder of one pass's own ID maps (``masks/`` under ``passes/<key>``)."""
        return pass_folder(self._work, step_pass)

    def clear_checkpoint(self) -> None:
        """Remove every checkpoint and pass output (before a fresh run)."""
        self._store.clear()
        shutil.rmtree(self._work.root / PASSES_DIR, ignore_errors=True)

    def _run_pass(self, step_pass: Pass, identity: dict[str, Any]
                  ) -> Iterator[tuple[int, np.ndarray | None, bytes | None]]:
        """Yield ``(frame, ids, PNG of ids)`` per written frame (``ids`` ``None``: reused)."""
        digests = self._digests(step_pass, identity)
        position, snapshot = self._resume_point(step_pass, digests)
        last = len(step_pass.order) - 1
        first_written = 0 if step_pass.writes_first else 1
        for index in range(first_written, position + 1):
            yield step_pass.order[index], None, None
        if position == last:
            return
        self._store.retain(step_pass.key, digests, position)
        config = self._xmem_config.for_shot(len(step_pass.order))
        if snapshot is None:
            processor = XMemProcessor(self._net, config)
        else:
            processor = XMemProcessor.restore(self._net, config, snapshot)
        out = self.pass_folder(step_pass)
        seen: list[int] = self._labels_before(step_pass, position)
        every = self._config.checkpoint_every
        for index in range(position + 1, last + 1):
            frame = step_pass.order[index]
            annotated = index == 0 or (step_pass.name == "forward" and frame in self._keyframes)
            with torch.inference_mode():
                probs = self._step(processor, frame, annotated, seen, index == last,
                                   self._pass_labels(step_pass))
            if index >= first_written:
                ids = self._to_ids(probs, seen)
                encoded = encode_id_map(ids, frame)  # once, for the pass map and the final one
                with disk_errors(self._work.root):
                    out.write_mask(frame, ids, encoded)
                yield frame, ids, encoded
            # After the step before every frame that is a multiple of ``every``: a keyframe on
            # such a frame (keys tend to sit on round numbers) resumes right before it.
            if index != last and step_pass.order[index + 1] % every == 0:
                self._store.save(step_pass.key, index, digests[index],
                                 processor.snapshot().to_dict(), last + 1)
        self._store.mark_done(step_pass.key, digests[-1])

    def _digests(self, step_pass: Pass, identity: dict[str, Any]) -> list[str]:
        """Input digest after each step (what the XMem state depends on up to that step)."""
        annotations = {0: self._keyframes[step_pass.order[0]].masks}
        if step_pass.name == "forward":
            annotations.update({i: self._keyframes[f].masks for i, f in
                                enumerate(step_pass.order) if i and f in self._keyframes})
        # The device type too: CPU and CUDA round differently, and a resumed pass must equal
        # a full run on the device that resumes it.
        seed = {"job": identity, "pass": step_pass.key, "steps": len(step_pass.order),
                "owned": list(step_pass.owned), "device": self._device.type}
        return step_digests(seed, step_pass.order, annotations)

    def _resume_point(self, step_pass: Pass, digests: list[str]) -> tuple[int, Any]:
        """The last step to reuse (-1: none) and its snapshot (``None`` when done or none).

        A step is reusable when a checkpoint (or the done marker) with the current digest is
        stored there and every ID map the pass wrote up to it is readable.
        """
        last = len(step_pass.order) - 1
        stored = self._store.positions(step_pass.key)
        matching = sorted((p for p, d in stored.items() if p < last and digests[p] == d),
                          reverse=True)
        done = self._store.is_done(step_pass.key, digests[-1])
        upto = last if done else (matching[0] if matching else -1)
        damaged = self._first_damaged(step_pass, upto)
        if done and damaged is None:
            return last, None
        for position in matching:
            if damaged is not None and position >= damaged:
                continue
            state = self._store.load(step_pass.key, position, digests[position], self._device)
            if state is not None:
                logger.info("%s: resuming after step %d", step_pass.key, position)
                return position, state["snapshot"]
        return -1, None

    def _first_damaged(self, step_pass: Pass, upto: int) -> int | None:
        """The first step up to ``upto`` whose pass ID map is missing or damaged."""
        folder = self.pass_folder(step_pass)
        for index in range(0 if step_pass.writes_first else 1, upto + 1):
            frame = step_pass.order[index]
            if not id_map_intact(folder.mask_path(frame), (self._width, self._height)):
                logger.warning("the propagated mask of frame %d (%s) is damaged; recomputing "
                               "it from the last good checkpoint", frame, step_pass.key)
                return index
        return None

    def _pass_labels(self, step_pass: Pass) -> list[int]:
        """Actor ids in this pass's XMem label order."""
        if step_pass.name == "forward":
            return self._labels
        return sorted(self._keyframes[step_pass.order[0]].masks)

    def _labels_before(self, step_pass: Pass, position: int) -> list[int]:
        """Actor ids (in label order) XMem knows after step ``position`` of a pass."""
        if position < 0:
            return []
        frames = step_pass.order[:position + 1]
        if step_pass.name != "forward":
            frames = frames[:1]
        annotated = {f for f in frames if f in self._keyframes}
        return [a for a in self._pass_labels(step_pass)
                if any(a in self._keyframes[f].masks for f in annotated)]

    def _step(self, processor: XMemProcessor, frame: int, annotated: bool, seen: list[int],
              end: bool, labels: list[int]) -> torch.Tensor:
        """One XMem step; updates ``seen``. Shape: returns (K+1, h, w) probabilities."""
        image = self._image(frame)
        if not annotated:
            return processor.step(image, None, None, end=end)
        keyframe = self._keyframes[frame]
        new = [a for a in labels if a in keyframe.masks and a not in seen]
        seen.extend(new)
        processor.set_all_labels(list(range(1, len(seen) + 1)))
        masks = np.stack([keyframe.masks.get(a, np.zeros((self._height, self._width), bool))
                          for a in seen])  # (K, H, W)
        mask = self._resize_mask(torch.from_numpy(masks).float())
        valid = [seen.index(a) + 1 for a in keyframe.masks]
        return processor.step(image, mask, sorted(valid), end=end)

    def _image(self, frame: int) -> torch.Tensor:
        """Normalised frame at XMem's size. Shape: (3, h, w)."""
        # resize first, then normalise, on the device (preprocess.prepare_xmem_frame)
        return prepare_xmem_frame(self._read(frame), self._config.size, self._device,
                                  self._pixel_aspect)

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


def run_propagation(shot: Shot, keyframes: KeyframeSet, job: Job, work: WorkFolder,
                    network: XMemNet | None, config: PropagateConfig, device: str,
                    state: str, cancel: CancelToken | None = None) -> Iterator[tuple[int, bool]]:
    """Propagate (or resume) and yield ``(frame, reused)`` per frame; marks the job complete.

    Args:
        shot: The opened plate and range.
        keyframes: Actors and keyframe masks.
        job: The job record (written first, incomplete, unless ``state`` is ``complete``).
        work: The work folder.
        network: The XMem network (``None`` only when ``state`` is ``complete``).
        config: Stage knobs.
        device: Torch device string.
        state: From :func:`work_state`; ``complete`` needs no network.
        cancel: Checked during the backfill passes (see :meth:`Propagator.run`).

    Raises:
        InputError: The work folder's disk is full (exit 2; no temporary file left).
        CancelledError: ``cancel`` was set during a backfill pass.
    """
    passes = plan_passes(keyframes, shot.first, shot.last, config.backfill)
    if state == "complete":
        for step_pass in passes:
            if step_pass.name != "backfill":
                yield from ((frame, True) for frame in step_pass.written())
        return
    assert network is not None, "propagation needs the XMem network"
    xmem_config = XMemConfig(mem_every=config.mem_every,
                             max_mid_term_frames=config.max_mid_term_frames,
                             min_mid_term_frames=config.min_mid_term_frames)
    propagator = Propagator(network, xmem_config, config, keyframes, shot.read_uint8, work,
                            (shot.plate.width, shot.plate.height), device,
                            shot.plate.pixel_aspect)
    if state == "fresh":
        propagator.clear_checkpoint()
    with disk_errors(work.root):
        work.write_job(job)
    yield from propagator.run(passes, fixed_identity(job), cancel)
    with disk_errors(work.root):
        work.write_job(dataclasses.replace(job, complete=True))
