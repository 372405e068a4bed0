"""Evaluate a predicted alpha sequence against ground truth with MaGGIe's metrics (+ IMQ).

Called by ``actormatte eval`` (:mod:`actormatte.cli.eval_cmd`) and by tests. The whole clip is
one evaluation unit, as in MaGGIe's ``tools/eval_baseline.py``: MAD, MSE, SAD, Grad and Conn
are averaged over every (frame, actor) map, dtSSD and MESSDdt over actors; see
:mod:`actormatte.evaluation.maggie_metrics` for the formulas.

Actors are paired by layer name (or the ``layers`` given). When the two layer sets differ,
they are paired by clip IoU of ``alpha > 0`` (Hungarian, IoU >= 0.5); an actor left unpaired is
scored against an all-zero layer, and InstMatt's IMQ (:mod:`actormatte.evaluation.imq`, per
frame, all-zero layers left out) is added. Two passes read the files: the first checks frames
and sizes and finds the clip's minimum and maximum (Grad normalises by them), the second scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from actormatte.errors import InputError, ShapeError
from actormatte.evaluation import maggie_metrics as mm
from actormatte.evaluation.imq import IMQAccumulator
from actormatte.evaluation.sequences import AlphaSequence

FRAME_METRICS = ("MAD", "MSE", "SAD", "Grad", "Conn")
CLIP_METRICS = ("dtSSD", "MESSDdt")
MATCH_IOU = 0.5

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Pair:
    """One scored actor: its predicted and ground-truth layer (``None`` = all zeros)."""

    name: str
    pred: str | None
    gt: str | None


@dataclass
class _Scan:
    """What the first pass learns: per-layer value ranges and clip IoU sums."""

    pred_range: dict[str, tuple[float, float]]
    gt_range: dict[str, tuple[float, float]]
    inter: np.ndarray  # (P, G) intersections of alpha > 0, summed over frames
    union: np.ndarray  # (P, G) unions
    shape: tuple[int, int]


def evaluate(pred: AlphaSequence, gt: AlphaSequence, *, layers: Sequence[str] | None = None,
             imq: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Score ``pred`` against ``gt`` over every frame of ``gt``.

    Args:
        pred: The predicted sequence.
        gt: The ground truth; its frames are the frames scored.
        layers: Score only these layers (present in both); default all.
        imq: Also compute IMQ when the layer sets are equal.
        progress: ``progress(done, total)`` over both passes.

    Returns:
        ``{"metrics": {...}, "per_layer": {name: {...}}, "frames": [{"frame": f, "layers":
        {name: {MAD..Conn}}}], "pairs": [...], "frames_scored": T, "size": [W, H]}``.
        Temporal metrics are ``None`` for a one-frame clip.

    Raises:
        InputError: Frames missing from ``pred``, unknown ``layers``, no layer to score.
        ShapeError: Prediction and ground truth differ in size.
    """
    missing = sorted(set(gt.frames) - set(pred.frames))
    if missing:
        raise InputError(f"{pred.description} lacks {len(missing)} frame(s) of the ground truth "
                         f"(first {missing[:10]}); render them or evaluate a shorter --gt range")
    frames = list(gt.frames)
    total = 2 * len(frames)
    scan = _scan(pred, gt, frames, progress, total)
    pairs, matched = _pairs(pred.layers, gt.layers, layers, scan)
    do_imq = imq or not matched
    return _score(pred, gt, frames, pairs, scan, do_imq, progress, total)


def _scan(pred: AlphaSequence, gt: AlphaSequence, frames: list[int],
          progress: Progress | None, total: int) -> _Scan:
    pred_range = {layer: (np.inf, -np.inf) for layer in pred.layers}
    gt_range = {layer: (np.inf, -np.inf) for layer in gt.layers}
    inter = np.zeros((len(pred.layers), len(gt.layers)))
    union = np.zeros_like(inter)
    shape: tuple[int, int] | None = None
    for done, frame in enumerate(frames, 1):
        pred_alphas, gt_alphas = pred.read(frame), gt.read(frame)
        frame_shape = next(iter(gt_alphas.values())).shape
        pred_shape = next(iter(pred_alphas.values())).shape
        if pred_shape != frame_shape or (shape is not None and frame_shape != shape):
            raise ShapeError(f"frame {frame}: prediction is {pred_shape[::-1]} (W, H), ground "
                             f"truth {frame_shape[::-1]}; evaluate at the ground truth's size "
                             "(render the prediction at that resolution)")
        shape = frame_shape
        _update_ranges(pred_range, pred_alphas)
        _update_ranges(gt_range, gt_alphas)
        pred_masks = np.stack([a > 0 for a in pred_alphas.values()]).reshape(len(pred_alphas), -1)
        gt_masks = np.stack([a > 0 for a in gt_alphas.values()]).reshape(len(gt_alphas), -1)
        both = pred_masks.astype(np.float64) @ gt_masks.T.astype(np.float64)
        inter += both
        union += pred_masks.sum(1)[:, None] + gt_masks.sum(1)[None, :] - both
        if progress:
            progress(done, total)
    assert shape is not None
    return _Scan(pred_range, gt_range, inter, union, shape)


def _update_ranges(ranges: dict[str, tuple[float, float]], alphas: dict[str, np.ndarray]) -> None:
    for layer, alpha in alphas.items():
        low, high = ranges[layer]
        ranges[layer] = (min(low, float(alpha.min())), max(high, float(alpha.max())))


def _pairs(pred_layers: list[str], gt_layers: list[str], chosen: Sequence[str] | None,
           scan: _Scan) -> tuple[list[Pair], bool]:
    """The actors to score and whether they were paired by name (True) or by IoU (False)."""
    if chosen:
        absent = [name for name in chosen if name not in pred_layers or name not in gt_layers]
        if absent:
            raise InputError(f"--layers {','.join(absent)}: not in both sequences (prediction "
                             f"has {pred_layers}, ground truth {gt_layers})")
        return [Pair(name, name, name) for name in chosen], True
    if set(pred_layers) == set(gt_layers):
        return [Pair(name, name, name) for name in gt_layers], True
    iou = scan.inter / (scan.union + 1e-8)
    rows, cols = linear_sum_assignment(1 - iou)
    pairs: list[Pair] = []
    used_pred: set[int] = set()
    used_gt: set[int] = set()
    for row, col in zip(rows, cols, strict=True):
        if iou[row, col] >= MATCH_IOU:
            pairs.append(Pair(gt_layers[col], pred_layers[row], gt_layers[col]))
            used_pred.add(int(row))
            used_gt.add(int(col))
    pairs += [Pair(g, None, g) for i, g in enumerate(gt_layers) if i not in used_gt]
    pairs += [Pair(f"pred:{p}", p, None) for i, p in enumerate(pred_layers) if i not in used_pred]
    return pairs, False


def _clip_range(ranges: dict[str, tuple[float, float]], names: list[str | None]) -> tuple[
        float, float]:
    """Min and max over the scored layers of one side (an all-zero stand-in counts as 0)."""
    lows = [ranges[n][0] if n is not None else 0.0 for n in names]
    highs = [ranges[n][1] if n is not None else 0.0 for n in names]
    return min(lows), max(highs)


def _score(pred: AlphaSequence, gt: AlphaSequence, frames: list[int], pairs: list[Pair],
           scan: _Scan, do_imq: bool, progress: Progress | None, total: int) -> dict[str, Any]:
    pred_low, pred_high = _clip_range(scan.pred_range, [p.pred for p in pairs])
    gt_low, gt_high = _clip_range(scan.gt_range, [p.gt for p in pairs])
    zeros = np.zeros(scan.shape, dtype=np.float32)
    per_map: dict[str, dict[str, list[float]]] = {p.name: {m: [] for m in FRAME_METRICS}
                                                  for p in pairs}
    temporal = {p.name: mm.TemporalAccumulator() for p in pairs}
    imq_acc = IMQAccumulator() if do_imq else None
    frame_rows: list[dict[str, Any]] = []
    for done, frame in enumerate(frames, 1):
        pred_alphas, gt_alphas = pred.read(frame), gt.read(frame)
        row: dict[str, Any] = {"frame": frame, "layers": {}}
        for pair in pairs:
            p = pred_alphas[pair.pred] if pair.pred is not None else zeros
            g = gt_alphas[pair.gt] if pair.gt is not None else zeros
            values = _frame_metrics(p, g, (pred_low, pred_high), (gt_low, gt_high))
            for name, value in values.items():
                per_map[pair.name][name].append(value)
            row["layers"][pair.name] = values
            temporal[pair.name].add(p, g)
        if imq_acc is not None:
            imq_acc.add_frame(_nonzero_stack(pred_alphas, scan.shape),
                              _nonzero_stack(gt_alphas, scan.shape))
        frame_rows.append(row)
        if progress:
            progress(len(frames) + done, total)
    return _report(pairs, per_map, temporal, imq_acc, frame_rows, scan.shape)


def _frame_metrics(pred: np.ndarray, gt: np.ndarray, pred_range: tuple[float, float],
                   gt_range: tuple[float, float]) -> dict[str, float]:
    pred_grad = mm.grad_magnitude(pred, *pred_range)
    gt_grad = mm.grad_magnitude(gt, *gt_range)
    return {"MAD": mm.mad(pred, gt), "MSE": mm.mse(pred, gt), "SAD": mm.sad(pred, gt),
            "Grad": mm.grad(pred_grad, gt_grad), "Conn": mm.conn(pred, gt)}


def _nonzero_stack(alphas: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """The frame's non-empty layers as one (n, H, W) stack (an absent actor is no instance)."""
    kept = [a for a in alphas.values() if a.max() > 0]
    return np.stack(kept) if kept else np.zeros((0, *shape), dtype=np.float32)


def _report(pairs: list[Pair], per_map: dict[str, dict[str, list[float]]],
            temporal: dict[str, mm.TemporalAccumulator], imq_acc: IMQAccumulator | None,
            frame_rows: list[dict[str, Any]], shape: tuple[int, int]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    per_layer: dict[str, dict[str, Any]] = {}
    clip_values: dict[str, list[float]] = {m: [] for m in CLIP_METRICS}
    for pair in pairs:
        row: dict[str, Any] = {m: mm.average(per_map[pair.name][m]) for m in FRAME_METRICS}
        dt, messd = temporal[pair.name].dtssd(), temporal[pair.name].messddt()
        row.update(dtSSD=dt, MESSDdt=messd, pred=pair.pred, gt=pair.gt)
        if dt is not None and messd is not None:
            clip_values["dtSSD"].append(dt)
            clip_values["MESSDdt"].append(messd)
        per_layer[pair.name] = row
    for name in FRAME_METRICS:
        metrics[name] = mm.average([v for p in pairs for v in per_map[p.name][name]])
    for name in CLIP_METRICS:
        metrics[name] = mm.average(clip_values[name]) if clip_values[name] else None
    if imq_acc is not None:
        metrics["IMQ"] = imq_acc.result()
    return {"metrics": metrics, "per_layer": per_layer, "frames": frame_rows,
            "pairs": [{"name": p.name, "pred": p.pred, "gt": p.gt} for p in pairs],
            "frames_scored": len(frame_rows), "size": [shape[1], shape[0]]}
