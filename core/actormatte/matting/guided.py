"""Plate-resolution edges: a guided filter that refines upsampled alphas with the plate as guide.

Opt-in (``--upsample guided``); called by the matte stage on every frame's mattes after the
reverse transform (:func:`refine_stream`), and by ``bench/bench_guided.py``. The default stays
bilinear (see the figures in docs/CLI.md and /work/notes/issue-12.md).

Method: the colour guided filter of He, Sun and Tang (ECCV 2010, TPAMI 2013) in its fast form
(He and Sun, arXiv:1505.00996): the linear model ``alpha ~ A . I + b`` (``A`` a 3-vector per
pixel, ``I`` the plate's sRGB-encoded RGB) is fitted in every ``(2r+1)^2`` window of a copy
of both images area-downsampled by ``subsample``; ``A`` and ``b`` are box-averaged, upsampled
bilinearly (half-pixel centres) and applied to the full-resolution plate, so edges and strands
present in the plate reappear in the alpha. Box filters are ``cv2.boxFilter`` (normalised,
reflected borders); the per-pixel 3x3 systems are solved in closed form (adjugate).

Only the uncertain band changes: pixels whose upsampled alpha is within ``band_threshold`` of 0
or 1 everywhere in a ``band_radius`` neighbourhood keep their value bit for bit; the rest take
the filtered value, clipped to 0..1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from actormatte.errors import ShapeError


@dataclass(frozen=True)
class GuidedConfig:
    """Guided-filter knobs (defaults chosen on bench/bench_guided.py's synthetic hair).

    Attributes:
        radius: Window radius in subsampled pixels.
        eps: Regularisation (larger: smoother, closer to the input alpha).
        subsample: Plate pixels per filter pixel; 0 = the plate/matting scale ratio.
        band_threshold: Alpha within this of 0 or 1 counts as confident.
        band_radius: Plate pixels the uncertain band is grown by.
    """

    radius: int = 4
    eps: float = 1e-4
    subsample: int = 0
    band_threshold: float = 1.0 / 255.0
    band_radius: int = 4


def uncertain_band(alpha: np.ndarray, threshold: float, radius: int) -> np.ndarray:
    """Pixels that are not confidently 0 or 1 (grown by ``radius``).

    Shape:
        alpha: (H, W) float32; returns (H, W) bool.
    """
    unsure = ((alpha > threshold) & (alpha < 1.0 - threshold)).astype(np.uint8)
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
        unsure = np.asarray(cv2.dilate(unsure, kernel), dtype=np.uint8)
    return unsure.astype(bool)


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    size = 2 * radius + 1
    return np.asarray(cv2.boxFilter(image, cv2.CV_32F, (size, size),
                                    borderType=cv2.BORDER_REFLECT))


def _coefficients(guide: np.ndarray, alpha: np.ndarray, radius: int,
                  eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Box-averaged ``A`` (h, w, 3) and ``b`` (h, w) of the colour guided filter."""
    mean_i = _box(guide, radius)  # (h, w, 3)
    mean_p = _box(alpha, radius)  # (h, w)
    cov_ip = _box(guide * alpha[..., None], radius) - mean_i * mean_p[..., None]  # (h, w, 3)
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    var = {p: _box(guide[..., p[0]] * guide[..., p[1]], radius)
           - mean_i[..., p[0]] * mean_i[..., p[1]] for p in pairs}
    s00, s01, s02 = var[0, 0] + eps, var[0, 1], var[0, 2]
    s11, s12, s22 = var[1, 1] + eps, var[1, 2], var[2, 2] + eps
    inv00 = s11 * s22 - s12 * s12  # adjugate of the symmetric 3x3 sigma + eps*I
    inv01 = s02 * s12 - s01 * s22
    inv02 = s01 * s12 - s02 * s11
    inv11 = s00 * s22 - s02 * s02
    inv12 = s02 * s01 - s00 * s12
    inv22 = s00 * s11 - s01 * s01
    det = s00 * inv00 + s01 * inv01 + s02 * inv02
    c0, c1, c2 = cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]
    a = np.stack([inv00 * c0 + inv01 * c1 + inv02 * c2,
                  inv01 * c0 + inv11 * c1 + inv12 * c2,
                  inv02 * c0 + inv12 * c1 + inv22 * c2], axis=-1) / det[..., None]  # (h, w, 3)
    b = mean_p - (a * mean_i).sum(axis=-1)
    return _box(a, radius), _box(b, radius)


def guided_refine(alpha: np.ndarray, guide: np.ndarray, scale: float,
                  config: GuidedConfig | None = None) -> np.ndarray:
    """Refine one upsampled alpha with the plate (module docstring).

    Args:
        alpha: Bilinearly upsampled alpha in 0..1.
        guide: The plate frame, sRGB-encoded, float in 0..1 or uint8.
        scale: Plate pixels per matting pixel (e.g. 3.75 at 4K with a 576 matte).
        config: Filter knobs.

    Shape:
        alpha: (H, W); guide: (H, W, 3); returns (H, W) float32.

    Raises:
        ShapeError: Sizes differ.
    """
    config = config or GuidedConfig()
    if guide.shape[:2] != alpha.shape or guide.ndim != 3 or guide.shape[2] != 3:
        raise ShapeError(f"guide must be (H, W, 3) = {alpha.shape} + (3,), got {guide.shape}")
    alpha = np.asarray(alpha, dtype=np.float32)
    band = uncertain_band(alpha, config.band_threshold, config.band_radius)
    if not band.any():
        return alpha.copy()
    plate = guide.astype(np.float32) / (255.0 if guide.dtype == np.uint8 else 1.0)
    height, width = alpha.shape
    step = config.subsample or max(1, int(round(scale)))
    small = (max(1, round(width / step)), max(1, round(height / step)))
    low_i = cv2.resize(plate, small, interpolation=cv2.INTER_AREA) if step > 1 else plate
    low_p = cv2.resize(alpha, small, interpolation=cv2.INTER_AREA) if step > 1 else alpha
    a, b = _coefficients(low_i, low_p, config.radius, config.eps)
    if step > 1:
        a = cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR)
        b = cv2.resize(b, (width, height), interpolation=cv2.INTER_LINEAR)
    refined = np.clip((a * plate).sum(axis=-1) + b, 0.0, 1.0)
    return np.where(band, refined, alpha).astype(np.float32)


def refine_stream(pairs: Iterator[tuple[int, np.ndarray]], stage: object
                  ) -> Iterator[tuple[int, np.ndarray]]:
    """The matte stage's hook: refine ``(frame, alphas (N, H, W))`` when ``--upsample guided``.

    ``stage`` is the :class:`~actormatte.matte.MatteStage` (its ``config.upsample``, its
    ``shot.read_uint8`` and ``source.transform``); with ``bilinear`` the pairs pass untouched.
    """
    config = getattr(stage, "config", None)
    if getattr(config, "upsample", "bilinear") != "guided":
        yield from pairs
        return
    read: Callable[[int], np.ndarray] = stage.shot.read_uint8  # type: ignore[attr-defined]
    scale_y, scale_x = stage.source.transform.scale_yx  # type: ignore[attr-defined]
    scale = 1.0 / min(scale_y, scale_x)
    for frame, alphas in pairs:
        guide = read(frame)  # (H, W, 3) uint8
        yield frame, np.stack([guided_refine(alpha, guide, scale) for alpha in alphas])
