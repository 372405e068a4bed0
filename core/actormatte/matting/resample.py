"""The one forward/reverse transform between plate pixels and MaGGIe's network pixels.

Called by the matte stage (:class:`actormatte.matte.ShotClipSource`: frames and ID maps forward,
alphas back) and by :mod:`actormatte.matting.reference` (the official protocol). Nothing else
resizes for MaGGIe.

Geometry. The plate (its data window, ``H x W`` stored pixels of aspect ``par``) is resized to
``h' x w'`` with ``ratio = size / min(H, W * par)``, ``h' = int(H * ratio)``,
``w' = int(W * par * ratio)`` (truncated as the official ``ResizeShort``; with ``par = 1`` this is
exactly the official size), then zero-padded at the bottom and right to a multiple of 64. The
resize is skipped when ``h' x w'`` is the plate size. Because the sizes are truncated the scale per
axis is ``s_y = h' / H`` and ``s_x = w' / W``, not ``ratio``.

Forward (both modes): ``cv2.resize`` INTER_LINEAR for frames, which samples the plate at
``x = (x' + 0.5) / s_x - 0.5`` (pixel centres at half-integers). ID maps: INTER_NEAREST_EXACT
(the same centres) in ``aligned`` mode, INTER_NEAREST (``x = floor(x' / s_x)``, a shift of up to
half a plate pixel) in ``official`` mode.

Reverse: crop the padding, then bilinear back to ``H x W``:

- ``aligned`` (the product's default): ``align_corners=False`` with the output size, i.e.
  ``x' = (x + 0.5) * s_x - 0.5``, the exact inverse of the forward map; registration error on
  synthetic edges is ~0 px (``tests/plates/test_plates_registration.py``,
  ``bench/bench_resample.py``).
- ``official`` (``--schedule reference`` and golden P): ``align_corners=True``, as the authors'
  ``reverse_transform_tensor``; it maps ``x' = x * (w' - 1) / (W - 1)``, which disagrees with the
  forward by up to ``|0.5 * (1 - s) / s|`` plate pixels at the left/top and more towards the
  right/bottom (about 0.33 px at 1080p, 1.4 px near the border of a 4K plate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention

from actormatte.errors import ShapeError

RESAMPLE_MODES = ("aligned", "official")
DEFAULT_MULTIPLE = 64


@dataclass(frozen=True)
class Resample:
    """The transform of one plate size to one network size.

    Attributes:
        plate_hw: The plate's stored size (its data window), ``(H, W)``.
        resized_hw: After the resize, ``(h', w')``.
        padded_hw: After the padding: the network size ``(Hp, Wp)``.
        mode: ``aligned`` or ``official`` (see the module docstring).
        pixel_aspect: The plate's pixel aspect ratio (width / height of one pixel).
        ratio: ``size / min(H, W * pixel_aspect)``, as the official code computes it.
    """

    plate_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    mode: str = "aligned"
    pixel_aspect: float = 1.0
    ratio: float = 1.0

    @classmethod
    def plan(cls, height: int, width: int, size: int, *, mode: str = "aligned",
             pixel_aspect: float = 1.0, multiple: int = DEFAULT_MULTIPLE) -> Resample:
        """The transform of a ``height x width`` plate to short side ``size``.

        Raises:
            ValueError: Unknown mode, non-positive sizes or pixel aspect (callers validate
                user input first; these are bugs).
        """
        if mode not in RESAMPLE_MODES:
            raise ValueError(f"resample mode must be one of {RESAMPLE_MODES}, got {mode!r}")
        if height <= 0 or width <= 0 or size <= 0 or multiple <= 0 or not pixel_aspect > 0:
            raise ValueError(f"bad plate {height}x{width}, size {size}, multiple {multiple} "
                             f"or pixel aspect {pixel_aspect}")
        ratio = float(size) / min(height, width * pixel_aspect)
        if ratio == 1.0 and pixel_aspect == 1.0:
            resized = (height, width)
        else:
            resized = (int(height * ratio), int(width * pixel_aspect * ratio))
        padded = tuple(-(-side // multiple) * multiple for side in resized)
        return cls((height, width), resized, (padded[0], padded[1]), mode, pixel_aspect, ratio)

    @property
    def pad_hw(self) -> tuple[int, int]:
        """Rows added at the bottom, columns added at the right."""
        return self.padded_hw[0] - self.resized_hw[0], self.padded_hw[1] - self.resized_hw[1]

    @property
    def resizes(self) -> bool:
        """Whether the plate is resized at all (``False``: only padded)."""
        return self.resized_hw != self.plate_hw

    @property
    def scale_yx(self) -> tuple[float, float]:
        """Network pixels per plate pixel along y and x (``h' / H``, ``w' / W``)."""
        return (self.resized_hw[0] / self.plate_hw[0], self.resized_hw[1] / self.plate_hw[1])

    def forward_image(self, image: np.ndarray) -> np.ndarray:
        """Resize (INTER_LINEAR) and zero-pad a plate frame.

        Shape:
            image: (H, W) or (H, W, C), any dtype cv2 resizes; returns (Hp, Wp[, C]), same dtype.
        """
        self._check_plate(image)
        return self._pad(self._resize(image, cv2.INTER_LINEAR))

    def forward_labels(self, labels: np.ndarray) -> np.ndarray:
        """Resize (nearest) and zero-pad an ID map or binary mask.

        Shape:
            labels: (H, W) integer; returns (Hp, Wp) of the same dtype (int64 goes through int32).
        """
        self._check_plate(labels)
        dtype = labels.dtype
        work = labels.astype(np.int32) if dtype in (np.int64, np.uint32) else labels
        nearest = cv2.INTER_NEAREST_EXACT if self.mode == "aligned" else cv2.INTER_NEAREST
        return self._pad(self._resize(work, nearest)).astype(dtype, copy=False)

    def reverse(self, alpha: torch.Tensor) -> torch.Tensor:
        """Network alphas back to plate pixels: crop the padding, bilinear resize (see module).

        Shape:
            alpha: (..., Hp, Wp) float; returns (..., H, W).

        Raises:
            ShapeError: ``alpha`` does not end in the padded size.
        """
        if alpha.dim() < 2 or tuple(alpha.shape[-2:]) != self.padded_hw:
            raise ShapeError(f"alpha must end in the padded size {self.padded_hw}, "
                             f"got {tuple(alpha.shape)}")
        cropped = alpha[..., :self.resized_hw[0], :self.resized_hw[1]]
        if not self.resizes:
            return cropped.clone()
        lead = alpha.shape[:-2]
        flat = cropped.reshape(-1, 1, *self.resized_hw)  # (..., h', w') -> (M, 1, h', w')
        out = F.interpolate(flat, size=self.plate_hw, mode="bilinear",
                            align_corners=self.mode == "official")
        return out.reshape(*lead, *self.plate_hw)  # (M, 1, H, W) -> (..., H, W)

    def _check_plate(self, array: np.ndarray) -> None:
        if array.shape[:2] != self.plate_hw:
            raise ShapeError(f"expected a plate-sized {self.plate_hw} array, got {array.shape}")

    def _resize(self, array: np.ndarray, interpolation: int) -> np.ndarray:
        if not self.resizes:
            return array
        size_wh = (self.resized_hw[1], self.resized_hw[0])
        return np.asarray(cv2.resize(array, size_wh, interpolation=interpolation))

    def _pad(self, array: np.ndarray) -> np.ndarray:
        bottom, right = self.pad_hw
        if bottom == 0 and right == 0:
            return np.ascontiguousarray(array)
        return np.asarray(cv2.copyMakeBorder(array, 0, bottom, 0, right, cv2.BORDER_CONSTANT,
                                             value=(0, 0, 0, 0)))


def plan_for_shot(shot: Any, job: Any, config: Any) -> Resample:
    """The matte stage's transform: the job's plate size, the plate's pixel aspect, the config.

    Args:
        shot: The opened :class:`~actormatte.shot.Shot` (its ``plate.pixel_aspect``, 1 if absent).
        job: The propagation :class:`~actormatte.jobs.Job` (``height``, ``width``).
        config: The :class:`~actormatte.config.MatteConfig` (``size``, ``resample_mode``).
    """
    pixel_aspect = float(getattr(shot.plate, "pixel_aspect", 1.0) or 1.0)
    return Resample.plan(job.height, job.width, config.size, mode=config.resample_mode,
                         pixel_aspect=pixel_aspect)


def edge_registration_error(plan: Resample, ramp: float = 32.0) -> float:
    """Worst shift (plate pixels) of synthetic edges sent forward, through identity, and back.

    Vertical and horizontal linear ramps of ``ramp`` plate pixels, centred at sub-pixel
    positions from near the left/top border to near the right/bottom one, go through
    :meth:`Resample.forward_image` (float32) and :meth:`Resample.reverse`, as a network that
    returns its input would see them; the 0.5 crossing of each is located by linear
    interpolation and compared with where it was. Used by the tests and ``bench/bench_resample.py``.
    """
    height, width = plan.plate_hw
    worst = 0.0
    for axis, length, across in ((1, width, height), (0, height, width)):
        edges = np.linspace(ramp, length - ramp, 7) + np.array([0.13, 0.29, 0.41, 0.5, 0.67,
                                                                0.83, 0.97])
        band = across // len(edges)
        centres = np.arange(length, dtype=np.float64) + 0.5
        image = np.zeros((across, length), dtype=np.float32)
        for k, edge in enumerate(edges):
            image[k * band:(k + 1) * band] = np.clip((centres - edge) / ramp + 0.5, 0.0, 1.0)
        plate = image if axis == 1 else np.ascontiguousarray(image.T)  # (H, W)
        out = plan.reverse(torch.from_numpy(plan.forward_image(plate))).numpy()
        out = out if axis == 1 else out.T  # (across, length)
        for k, edge in enumerate(edges):
            row = out[k * band + band // 2].astype(np.float64)
            i = int(np.argmax(row >= 0.5))
            found = i - 0.5 + (0.5 - row[i - 1]) / (row[i] - row[i - 1])  # centres at i + 0.5
            worst = max(worst, abs(found - edge))
    return worst
