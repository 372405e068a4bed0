"""The matte stage driver: plate frames and propagated ID maps in, per-frame mattes out.

Called by :func:`actormatte.pipeline.matte`. :class:`ShotClipSource` prepares each frame exactly
like MaGGIe's official test transform (MAGGIE_SPEC §3): the frame as 8-bit sRGB (through the
colour converter), ``cv2.resize`` INTER_LINEAR to short side ``size`` (``ratio = size / short``,
new size truncated, skipped only when the ratio is 1), bottom/right zero padding to a multiple
of 64, ``/255`` then ImageNet normalisation; the ID map with nearest and zero padding. The
reverse transform crops the padding, resizes back bilinearly and snaps ``<= 1/255`` to 0 and
``>= 254/255`` to 1. The geometry is :mod:`actormatte.matting.resample`'s (``aligned`` by
default, the official ``align_corners=True`` reverse with ``--schedule reference``).
:class:`MatteStage` drives the
:class:`~actormatte.matting.windows.WindowRunner` over the frames still to write and writes them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from actormatte.config import MatteConfig
from actormatte.device import precision_forward, resolve_precision
from actormatte.export import MatteWriter
from actormatte.jobs import Job, WorkFolder
from actormatte.matting.guided import refine_stream
from actormatte.matting.loading import load_maggie
from actormatte.matting.model import FrameFeatures
from actormatte.matting.resample import Resample, plan_for_shot
from actormatte.matting.windows import WindowRunner
from actormatte.progress import CancelToken, ProgressCallback, ProgressEvent
from actormatte.provenance import provenance_for_stage, split_frames
from actormatte.shot import Shot
from actormatte.stream import WriteBehind, io_workers

_PAD = 64
_SNAP_LOW = np.float32(1.0 / 255.0)
_SNAP_HIGH = np.float32(254.0 / 255.0)
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)  # (3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)  # (3, 1, 1)

#: ``read(frame) -> (H, W, 3) uint8`` sRGB frame at plate resolution.
FrameReader = Callable[[int], np.ndarray]


def matting_size(height: int, width: int, size: int) -> tuple[int, int]:
    """The official resize: ``(h, w)`` for short side ``size``, truncated as Python does."""
    ratio = float(size) / min(height, width)
    if ratio == 1.0:
        return height, width
    return int(height * ratio), int(width * ratio)


def _pad_size(value: int) -> int:
    return (value + _PAD - 1) // _PAD * _PAD


class ShotClipSource:
    """Frames and guidance of a propagated shot at MaGGIe's resolution (a ``ClipSource``).

    Args:
        job: The propagation job (frames, size, actors).
        work: The work folder holding the ID maps.
        read: Frame reader giving 8-bit sRGB frames.
        size: MaGGIe's short side.
        device: Torch device string.
    """

    def __init__(self, job: Job, work: WorkFolder, read: FrameReader, size: int,
                 device: str, resample: Resample | None = None) -> None:
        self._job = job
        self._work = work
        self._read = read
        self._device = torch.device(device)
        self.num_frames = len(job.frames)
        self.actor_ids: Sequence[int] = [actor.id for actor in job.actors]
        self.plate_size = (job.height, job.width)
        self.transform = resample or Resample.plan(job.height, job.width, size)
        self.resized = self.transform.resized_hw
        self.padded = self.transform.padded_hw
        #: Leave the reverse to :meth:`finish` (in the EXR writers): :meth:`reverse` then
        #: hands the network's alphas through.
        self.defer_reverse = False

    def frame_of(self, index: int) -> int:
        """Plate frame number of a shot index."""
        return self._job.first + index

    def image(self, index: int) -> torch.Tensor:
        """Normalised, padded frame. Shape: (3, hp, wp)."""
        rgb = self._read(self.frame_of(index))  # (H, W, 3) uint8
        rgb = self.transform.forward_image(rgb)
        image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0  # (3, hp, wp)
        return ((image - _MEAN) / _STD).to(self._device)

    def ids(self, index: int) -> torch.Tensor:
        """Instance-ID map, padded with 0. Shape: (hp, wp) int64."""
        labels = self._work.read_mask(self.frame_of(index), (self._job.width, self._job.height))
        labels = self.transform.forward_labels(labels)
        return torch.from_numpy(labels.astype(np.int64)).to(self._device)

    def reverse(self, alpha: torch.Tensor) -> torch.Tensor:
        """Network alphas back to the plate, snapped. Shape: (N, hp, wp) -> (N, H, W).

        With :attr:`defer_reverse`, ``alpha`` itself (N, hp, wp): :meth:`finish` reverses it.
        """
        return alpha if self.defer_reverse else self.finish(alpha)

    def finish(self, alpha: torch.Tensor) -> torch.Tensor:
        """The reverse transform and the snap. Shape: (N, hp, wp) -> (N, H, W)."""
        return snap_alpha(self.transform.reverse(alpha))  # a new tensor: snapped in place


def snap_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """Snap ``<= 1/255`` to 0 and ``>= 254/255`` to 1, in place (returns ``alpha``).

    The thresholds are compared in ``alpha``'s float32, as torch compares a tensor with a Python
    float; a value snapped to 0 is never ``>= 254/255``, so the order of the two is free. On
    the CPU the work runs on numpy's view of the tensor (a third of the cost of masked writes).

    Shape:
        Any; float32.
    """
    if alpha.device.type == "cpu" and alpha.dtype == torch.float32 and alpha.is_contiguous():
        values = alpha.numpy()
        np.copyto(values, np.float32(0.0), where=values <= _SNAP_LOW)
        np.copyto(values, np.float32(1.0), where=values >= _SNAP_HIGH)
        return alpha
    alpha.masked_fill_(alpha <= 1.0 / 255.0, 0.0)
    return alpha.masked_fill_(alpha >= 254.0 / 255.0, 1.0)


class MatteStage:
    """Mattes a frame range of a propagated shot and writes one EXR per frame.

    Args:
        shot: The opened plate.
        job: The propagation job.
        work: Its work folder.
        writer: The EXR writer (layers in actor order).
        config: MaGGIe knobs.
        device: Torch device string.
    """

    def __init__(self, shot: Shot, job: Job, work: WorkFolder, writer: MatteWriter,
                 config: MatteConfig, device: str) -> None:
        self.shot = shot
        self.job = job
        self.work = work
        self.writer = writer
        self.config = config
        self.device = device
        self.source = ShotClipSource(job, work, shot.read_uint8, config.size, device,
                                     plan_for_shot(shot, job, config))
        # On the CPU the reverse and snap run in the EXR writers, off the critical path (same
        # operations, so the same bits); on a GPU they stay on the device; the guided upsample
        # needs plate-resolution alphas before the writers.
        self.source.defer_reverse = (torch.device(device).type == "cpu"
                                     and config.upsample != "guided")
        self.runner = WindowRunner(None, None, config.schedule, config.window, config.stride,
                                   config.max_instances)
        self.provenance = provenance_for_stage(self)

    def model_name(self) -> str:
        """The MaGGIe model this shot needs: the image model for a 1-frame shot."""
        return "maggie-image" if self.job.first == self.job.last else "maggie-video"

    def load_networks(self, weights: Path) -> None:
        """Load MaGGIe from ``weights`` (its model.safetensors) into the runner.

        Raises:
            WeightsError: Wrong keys, shapes or config (exit code 4).
        """
        variant: Literal["video", "image"] = (
            "image" if self.model_name() == "maggie-image" else "video")
        net = load_maggie(weights.parent, variant, device=self.device,
                          sparse_backend=self.config.sparse_backend)  # type: ignore[arg-type]
        # --precision: autocast/TF32 around each forward, outputs float32 (actormatte.device)
        precision = resolve_precision(self.config.precision, torch.device(self.device).type)
        forward = precision_forward(net.__call__, precision)
        # window5: each frame encoded once per actor slots, reused by every window holding it
        # (one frame per encode: within 1e-5 of whole-window forwards). The reference schedule
        # keeps whole-window forwards: it must equal the official loop bit for bit.
        split = (precision_forward(net.encode_frames, precision),
                 precision_forward(net.decode_frames, precision), FrameFeatures.cat)
        reuse = (variant == "video" and self.config.schedule == "window5"
                 and self.config.encoder_reuse)
        self.runner = WindowRunner(forward if variant == "video" else None,
                                   forward if variant == "image" else None,
                                   self.config.schedule, self.config.window, self.config.stride,
                                   self.config.max_instances, split=split if reuse else None)

    def split(self, first: int, last: int, overwrite: bool) -> tuple[list[int], list[int]]:
        """Frames of ``first .. last`` to compute, and frames to reuse (actormatte.provenance)."""
        split = split_frames(range(first, last + 1), self.provenance, self.writer, overwrite)
        self.stale = split.stale
        return split.todo, split.reused

    def frames_read(self, todo: Sequence[int]) -> tuple[int, int] | None:
        """First and last plate frame the windows for ``todo`` read (``None``: nothing to do)."""
        if not todo:
            return None
        plan = self.runner.plan(self.source.num_frames)
        needed = self.runner.windows_needed(self.source.num_frames,
                                            [f - self.job.first for f in todo])
        start = min(plan[i].start for i in needed)
        stop = max(plan[i].stop for i in needed)
        return self.job.first + start, self.job.first + stop - 1

    def window_label(self, frame: int) -> str:
        """Plate frames of the window that produced ``frame`` (``"1001-1005"``)."""
        win = self.runner.owner(self.source.num_frames, frame - self.job.first)
        return f"{self.job.first + win.start}-{self.job.first + win.stop - 1}"

    def mattes(self, todo: Sequence[int],
               cancel: CancelToken) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(plate frame, alphas (N, H, W) float32)`` for ``todo``, in frame order."""
        stream = MatteStream(self, todo, masks_on_disk=True)
        while not stream.finished():
            cancel.check()
            yield from refine_stream(stream.run_next(), self)

    def read_order(self, todo: Sequence[int]) -> list[int]:
        """Plate frames the windows for ``todo`` read, in the order they read them."""
        span = self.frames_read(todo)
        return [] if span is None else list(range(span[0], span[1] + 1))

    def write(self, frame: int, mattes: np.ndarray) -> Path:
        """Write one frame's EXR atomically (runs in the writer threads).

        Shape:
            mattes: (N, H, W) in actor order; (N, hp, wp) network alphas when the source
            defers its reverse (:attr:`ShotClipSource.defer_reverse`).
        """
        if self.source.defer_reverse:
            mattes = self.source.finish(torch.from_numpy(mattes)).numpy()  # (N, H, W)
        layers = self.writer.layers
        return self.writer.write(frame, {layer: mattes[k] for k, layer in enumerate(layers)},
                                 {"plate_frame": str(frame),
                                  "plate_file": self.shot.plate.path_for(frame),
                                  "window": self.window_label(frame),
                                  **self.provenance.metadata(frame)})


class MatteStream:
    """The windows producing ``todo``, in plan order, each run once its ID maps exist.

    The propagation reports each frame whose ID map is on disk (:meth:`mask_ready`); the
    pipeline then asks for the windows that became ready (:meth:`ready`), so matting lags
    propagation by about one window. :meth:`needs` tells the frame store which frames a window
    still to run will read. A stand-alone ``matte`` has every ID map on disk from the start and
    runs the same windows in the same order, so both give the same bits.

    Args:
        stage: The matte stage (source and runner).
        todo: Plate frames to produce.
        masks_on_disk: Every ID map exists already (``matte``, or a complete propagation).
    """

    def __init__(self, stage: MatteStage, todo: Sequence[int], masks_on_disk: bool) -> None:
        self._stage = stage
        self._first = stage.job.first
        num_frames = stage.source.num_frames
        indices = [frame - self._first for frame in todo]
        plan = stage.runner.plan(num_frames)
        self._windows = [(i, plan[i]) for i in stage.runner.windows_needed(num_frames, indices)]
        self._next = 0
        self._session = stage.runner.session(stage.source, set(indices))
        self._ready: set[int] = set(range(num_frames)) if masks_on_disk else set()

    def mask_ready(self, frame: int) -> None:
        """Record that ``frame``'s ID map is on disk."""
        self._ready.add(frame - self._first)

    def needs(self, frame: int) -> bool:
        """Whether a window still to run reads plate frame ``frame``."""
        index = frame - self._first
        for _, win in self._windows[self._next:]:
            if win.start > index:
                return False
            if index < win.stop:
                return True
        return False

    def finished(self) -> bool:
        """Whether every window has run."""
        return self._next == len(self._windows)

    def ready(self) -> Iterator[tuple[int, np.ndarray]]:
        """Run the windows whose ID maps all exist; ``(plate frame, alphas (N, H, W))``."""
        while not self.finished():
            win = self._windows[self._next][1]
            if not all(i in self._ready for i in range(win.start, win.stop)):
                return
            yield from self.run_next()

    def run_next(self) -> Iterator[tuple[int, np.ndarray]]:
        """Run the next window (its ID maps must exist) and yield its wanted frames."""
        window_index, win = self._windows[self._next]
        outputs = self._stage.runner.run_window(self._session, window_index)
        self._next += 1
        self._ready.difference_update(range(win.start))
        for index, alphas in outputs:
            yield self._first + index, alphas.float().cpu().numpy()


class MatteOutputs:
    """Writes a stage's mattes behind the compute and reports each frame once it is on disk.

    ``matte`` progress is reported when a frame is computed; the ``frame`` event and ``write``
    progress when its EXR is complete, in frame order. :meth:`close` waits for the writes in
    flight (and reports them), so an error or a cancel leaves complete files only.

    Args:
        stage: The matte stage (its :meth:`MatteStage.write` runs in the writer threads).
        total: Frames of the command's range.
        progress: Progress callback.
        events: The protocol's ``frame`` events.
    """

    def __init__(self, stage: MatteStage, total: int, progress: ProgressCallback,
                 events: Callable[[str, dict[str, Any]], None]) -> None:
        self._stage = stage
        self._total = total
        self._progress = progress
        self._events = events
        self._matted = self._done = 0
        self.written = 0
        workers = io_workers()
        self._pool: WriteBehind[Path] = WriteBehind(workers.write, depth=workers.write + 1)

    def skip(self, frames: Sequence[int]) -> None:
        """Report frames already complete on disk."""
        for frame in frames:
            self._matted += 1
            self._done += 1
            self._events("frame", {"frame": frame, "path": str(self._stage.writer.path_for(frame)),
                                   "skipped": True})
            self._progress(ProgressEvent("matte", self._matted, self._total, frame))
            self._progress(ProgressEvent("write", self._done, self._total, frame))

    def add(self, mattes: Iterator[tuple[int, np.ndarray]], cancel: CancelToken) -> None:
        """Queue the writes of ``(frame, alphas (N, H, W))``; checks ``cancel`` after each."""
        for frame, alphas in mattes:
            self._matted += 1
            self._progress(ProgressEvent("matte", self._matted, self._total, frame))
            write = functools.partial(self._stage.write, frame, alphas)
            for done, path in self._pool.submit(frame, write):
                self._report(done, path)
            cancel.check()

    def finish(self) -> None:
        """Wait for every write (raising the first error) and report them."""
        for frame, path in self._pool.drain():
            self._report(frame, path)

    def close(self) -> None:
        """Wait for the writes in flight and report the ones that completed (idempotent)."""
        for frame, path in self._pool.close():
            self._report(frame, path)

    def _report(self, frame: int, path: Path) -> None:
        self.written += 1
        self._done += 1
        self._events("frame", {"frame": frame, "path": str(path), "skipped": False})
        self._progress(ProgressEvent("write", self._done, self._total, frame))
