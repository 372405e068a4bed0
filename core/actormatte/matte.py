"""The matte stage driver: plate frames and propagated ID maps in, per-frame mattes out.

Called by :func:`actormatte.pipeline.matte`. :class:`ShotClipSource` prepares each frame exactly
like MaGGIe's official test transform (MAGGIE_SPEC §3): the frame as 8-bit sRGB (through the
colour converter), ``cv2.resize`` INTER_LINEAR to short side ``size`` (``ratio = size / short``,
new size truncated, skipped only when the ratio is 1), bottom/right zero padding to a multiple
of 64, ``/255`` then ImageNet normalisation; the ID map with INTER_NEAREST and zero padding. The
reverse transform crops the padding, resizes back with bilinear ``align_corners=True`` and snaps
values ``<= 1/255`` to 0 and ``>= 254/255`` to 1. :class:`MatteStage` drives the
:class:`~actormatte.matting.windows.WindowRunner` over the frames still to write and writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention

from actormatte.config import MatteConfig
from actormatte.export import MatteWriter
from actormatte.jobs import Job, WorkFolder
from actormatte.matting.loading import load_maggie
from actormatte.matting.windows import WindowRunner
from actormatte.progress import CancelToken
from actormatte.shot import Shot

_PAD = 64
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
                 device: str) -> None:
        self._job = job
        self._work = work
        self._read = read
        self._device = torch.device(device)
        self.num_frames = len(job.frames)
        self.actor_ids: Sequence[int] = [actor.id for actor in job.actors]
        self.plate_size = (job.height, job.width)
        self.resized = matting_size(job.height, job.width, size)
        self.padded = (_pad_size(self.resized[0]), _pad_size(self.resized[1]))

    def frame_of(self, index: int) -> int:
        """Plate frame number of a shot index."""
        return self._job.first + index

    def image(self, index: int) -> torch.Tensor:
        """Normalised, padded frame. Shape: (3, hp, wp)."""
        rgb = self._read(self.frame_of(index))  # (H, W, 3) uint8
        rgb = self._resize(rgb, cv2.INTER_LINEAR)
        rgb = self._pad(rgb)
        image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0  # (3, hp, wp)
        return ((image - _MEAN) / _STD).to(self._device)

    def ids(self, index: int) -> torch.Tensor:
        """Instance-ID map, padded with 0. Shape: (hp, wp) int64."""
        labels = self._work.read_mask(self.frame_of(index), (self._job.width, self._job.height))
        labels = self._pad(self._resize(labels, cv2.INTER_NEAREST))
        return torch.from_numpy(labels.astype(np.int64)).to(self._device)

    def reverse(self, alpha: torch.Tensor) -> torch.Tensor:
        """Network alphas back to the plate, snapped. Shape: (N, hp, wp) -> (N, H, W)."""
        cropped = alpha[:, :self.resized[0], :self.resized[1]]
        if tuple(cropped.shape[-2:]) != self.plate_size:
            cropped = F.interpolate(cropped[None], size=self.plate_size, mode="bilinear",
                                    align_corners=True)[0]
        out = cropped.clone()
        out[cropped <= 1.0 / 255.0] = 0.0
        out[cropped >= 254.0 / 255.0] = 1.0
        return out

    def _resize(self, array: np.ndarray, interpolation: int) -> np.ndarray:
        if self.resized == self.plate_size:
            return array
        return cv2.resize(array, (self.resized[1], self.resized[0]), interpolation=interpolation)

    def _pad(self, array: np.ndarray) -> np.ndarray:
        bottom = self.padded[0] - array.shape[0]
        right = self.padded[1] - array.shape[1]
        if bottom == 0 and right == 0:
            return np.ascontiguousarray(array)
        return np.asarray(cv2.copyMakeBorder(array, 0, bottom, 0, right, cv2.BORDER_CONSTANT,
                                             value=(0, 0, 0, 0)))


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
        self.source = ShotClipSource(job, work, shot.read_uint8, config.size, device)
        self.runner = WindowRunner(None, None, config.schedule, config.window, config.stride,
                                   config.max_instances)

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
        net = load_maggie(weights.parent, variant, device=self.device)
        forward = net.__call__
        self.runner = WindowRunner(forward if variant == "video" else None,
                                   forward if variant == "image" else None,
                                   self.config.schedule, self.config.window, self.config.stride,
                                   self.config.max_instances)

    def split(self, first: int, last: int, overwrite: bool) -> tuple[list[int], list[int]]:
        """Frames of ``first .. last`` to compute, and frames already complete on disk."""
        todo, done = [], []
        for frame in range(first, last + 1):
            if not overwrite and self.writer.is_complete(frame):
                done.append(frame)
            else:
                todo.append(frame)
        return todo, done

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
        indices = [frame - self.job.first for frame in todo]
        for index, alphas in self.runner.run(self.source, indices, cancel.check):
            yield self.job.first + index, alphas.float().cpu().numpy()

    def write(self, frame: int, mattes: np.ndarray) -> Path:
        """Write one frame's EXR atomically. Shape: mattes (N, H, W) in actor order."""
        layers = self.writer.layers
        return self.writer.write(frame, {layer: mattes[k] for k, layer in enumerate(layers)},
                                 {"plate_frame": str(frame),
                                  "plate_file": self.shot.plate.path_for(frame),
                                  "window": self.window_label(frame)})
