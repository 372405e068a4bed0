"""--upsample guided (matting/guided.py): refines the uncertain band, leaves confident pixels."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import torch

from actormatte.config import MatteConfig
from actormatte.matting.guided import guided_refine, refine_stream, uncertain_band
from actormatte.matting.resample import Resample


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """192x192: a disc with 1-px strands, brown over a smooth colourful background."""
    gt = np.zeros((192, 192), np.float32)
    cv2.circle(gt, (96, 120), 40, 1.0, -1, cv2.LINE_AA)
    for k in range(12):
        cv2.line(gt, (60 + 6 * k, 90), (40 + 9 * k, 20), 1.0, 1, cv2.LINE_AA)
    yy, xx = np.mgrid[0:192, 0:192].astype(np.float32)
    back = np.stack([0.5 + 0.3 * np.sin(xx / 23), 0.6 + 0.2 * np.cos(yy / 17),
                     0.4 + 0.0 * xx], -1)
    fore = np.array([0.25, 0.15, 0.08], np.float32)
    rgb = gt[..., None] * fore + (1 - gt[..., None]) * back
    return gt, np.round(rgb * 255).astype(np.uint8)


def _bilinear(gt: np.ndarray) -> tuple[np.ndarray, Resample]:
    plan = Resample.plan(192, 192, 64)
    low = cv2.resize(gt, (64, 64), interpolation=cv2.INTER_AREA)
    return plan.reverse(torch.from_numpy(low)).numpy(), plan


def test_guided_beats_bilinear_on_thin_strands() -> None:
    gt, rgb = _scene()
    bilinear, _ = _bilinear(gt)
    guided = guided_refine(bilinear, rgb, 3.0)
    assert np.abs(guided - gt).sum() < 0.85 * np.abs(bilinear - gt).sum()
    assert guided.dtype == np.float32 and 0.0 <= guided.min() and guided.max() <= 1.0


def test_confident_pixels_are_unchanged() -> None:
    gt, rgb = _scene()
    bilinear, _ = _bilinear(gt)
    bilinear[bilinear <= 1 / 255] = 0.0
    bilinear[bilinear >= 254 / 255] = 1.0
    guided = guided_refine(bilinear, rgb, 3.0)
    keep = ~uncertain_band(bilinear, 1 / 255, 4)
    assert keep.mean() > 0.5
    np.testing.assert_array_equal(guided[keep], bilinear[keep])
    flat = np.zeros((32, 32), np.float32)
    np.testing.assert_array_equal(guided_refine(flat, rgb[:32, :32], 3.0), flat)


def test_refine_stream_follows_the_option() -> None:
    gt, rgb = _scene()
    bilinear, plan = _bilinear(gt)
    pairs = [(7, bilinear[None])]
    stage = SimpleNamespace(config=MatteConfig(), shot=SimpleNamespace(read_uint8=lambda f: rgb),
                            source=SimpleNamespace(transform=plan))
    assert list(refine_stream(iter(pairs), stage))[0][1] is pairs[0][1]
    stage.config = MatteConfig(upsample="guided")
    frame, refined = next(refine_stream(iter(pairs), stage))
    assert frame == 7 and refined.shape == (1, 192, 192)
    assert not np.array_equal(refined[0], bilinear)
