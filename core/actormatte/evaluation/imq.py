"""InstMatt's Instance Matting Quality (IMQ), as its ``evaluation/IMQ.py`` computes it.

Called by :mod:`actormatte.evaluation.evaluate` on every frame when the predicted and the
ground-truth layer sets differ (or on request). Restated from InstMatt's public evaluation code:

1. Instances are matched one-to-one by the Hungarian algorithm on ``1 - IoU`` of their ``alpha > 0``
   masks (IoU = intersection / (union + 1e-8)); a match counts as a true positive at threshold
   ``t`` (0.5 and 0.75) when its IoU >= t; FP = predictions - TP, FN = ground truths - TP.
2. Each TP pair scores ``1 - min(10 * e, 1)`` for e = MAD, MSE, Grad, Conn computed inside the
   union of the two ``alpha > 0`` masks and divided by (its pixel count + 1); Grad uses the
   same 9x9 derivative-of-Gaussian filter on un-normalised alphas with edge-replicating padding;
   Conn the same thresholds as MaGGIe's. The IoU column sums the matched IoUs.
3. Over all frames, ``IMQ = sum(scores) / (TP + 0.5 FP + 0.5 FN + 1e-6)`` per threshold.

Unmatched instances add to FP / FN and score nothing, which is "compared against zeros".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from actormatte.evaluation.maggie_metrics import (
    CONN_STEP,
    CONN_THETA,
    gradient_amplitude,
    largest_component,
)

THRESHOLDS = (0.5, 0.75)
SCORE_NAMES = ("MAD", "MSE", "Grad", "Conn", "IoU")


def iou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of every prediction against every ground truth, on ``alpha > 0``.

    Shape:
        pred: (n, H, W); gt: (m, H, W). Returns (n, m) float64.
    """
    pred_mask = (pred > 0).reshape(len(pred), -1)  # (n, H*W)
    gt_mask = (gt > 0).reshape(len(gt), -1)  # (m, H*W)
    inter = pred_mask.astype(np.float64) @ gt_mask.T.astype(np.float64)
    union = pred_mask.sum(1)[:, None] + gt_mask.sum(1)[None, :] - inter
    return inter / (union + 1e-8)


def _conn_error(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    steps = np.arange(0, 1 + CONN_STEP, CONN_STEP).astype(np.float32)
    level = -np.ones(gt.shape, dtype=np.float32)
    for index in range(1, len(steps)):
        omega = largest_component(((pred >= steps[index]) & (gt >= steps[index])).astype(
            np.uint8))
        level[(level == -1) & ~omega] = steps[index - 1]
    level[level == -1] = 1
    pred_d, gt_d = pred - level, gt - level
    pred_phi = 1 - pred_d * (pred_d >= CONN_THETA)
    gt_phi = 1 - gt_d * (gt_d >= CONN_THETA)
    return float((np.abs(pred_phi - gt_phi) * mask).sum(dtype=np.float64) / (mask.sum() + 1.0))


def similarity(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float, float, float]:
    """The four matting-quality scores of one matched pair, each ``1 - min(10 e, 1)``.

    Shape:
        pred, gt: (H, W) alphas in 0..1.
    """
    pred = (pred.astype(np.float32) * 255).astype(np.float32) / np.float32(255)
    gt = (gt.astype(np.float32) * 255).astype(np.float32) / np.float32(255)
    mask = ((pred > 0) | (gt > 0)).astype(np.float32)
    count = float(mask.sum()) + 1.0
    diff = pred - gt
    mad_e = float((np.abs(diff) * mask).sum(dtype=np.float64)) / count
    mse_e = float((diff ** 2 * mask).sum(dtype=np.float64)) / count
    amp = (gradient_amplitude(pred, cv2.BORDER_REPLICATE)
           - gradient_amplitude(gt, cv2.BORDER_REPLICATE))
    grad_e = float((amp ** 2 * mask).sum(dtype=np.float64)) / count
    conn_e = _conn_error(pred, gt, mask)
    return tuple(1.0 - min(10.0 * e, 1.0) for e in (mad_e, mse_e, grad_e, conn_e))  # type: ignore[return-value]


@dataclass
class IMQAccumulator:
    """Running IMQ sums over frames, one set per IoU threshold."""

    tp: dict[float, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))
    fp: dict[float, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))
    fn: dict[float, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))
    scores: dict[float, np.ndarray] = field(
        default_factory=lambda: {t: np.zeros(len(SCORE_NAMES)) for t in THRESHOLDS})

    def add_frame(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Match one frame's instances and add its counts and scores.

        Shape:
            pred: (n, H, W); gt: (m, H, W); n or m may be 0.
        """
        if len(pred) == 0 or len(gt) == 0:
            for thresh in THRESHOLDS:
                self.fp[thresh] += len(pred)
                self.fn[thresh] += len(gt)
            return
        ious = iou_matrix(pred, gt)
        rows, cols = linear_sum_assignment(1 - ious)
        matched = ious[rows, cols]
        cache: dict[tuple[int, int], tuple[float, float, float, float]] = {}
        for thresh in THRESHOLDS:
            keep = np.flatnonzero(matched >= thresh)
            self.tp[thresh] += len(keep)
            self.fp[thresh] += len(pred) - len(keep)
            self.fn[thresh] += len(gt) - len(keep)
            for k in keep:
                pair = (int(rows[k]), int(cols[k]))
                if pair not in cache:
                    cache[pair] = similarity(pred[pair[0]], gt[pair[1]])
                self.scores[thresh] += np.array([*cache[pair], matched[k]])

    def result(self) -> dict[str, dict[str, float]]:
        """IMQ per threshold, scores as fractions (papers print them x100).

        Returns:
            ``{"0.5": {"MAD", "MSE", "Grad", "Conn", "IoU", "TP", "FP", "FN"}, "0.75": {...}}``.
        """
        out: dict[str, dict[str, float]] = {}
        for thresh in THRESHOLDS:
            coeff = 1.0 / (self.tp[thresh] + 0.5 * self.fp[thresh] + 0.5 * self.fn[thresh]
                           + 1e-6)
            row = {name: float(value * coeff)
                   for name, value in zip(SCORE_NAMES, self.scores[thresh], strict=True)}
            row.update(TP=self.tp[thresh], FP=self.fp[thresh], FN=self.fn[thresh])
            out[str(thresh)] = row
        return out
