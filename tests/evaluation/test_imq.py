"""InstMatt's IMQ: matching, counts and scores on small synthetic instances."""

from __future__ import annotations

import numpy as np
import pytest

from actormatte.evaluation.imq import IMQAccumulator, iou_matrix, similarity


def _blob(y: int, x: int, size: int = 8, shape: tuple[int, int] = (32, 32)) -> np.ndarray:
    alpha = np.zeros(shape, dtype=np.float32)
    alpha[y:y + size, x:x + size] = 1.0
    return alpha


def test_iou_matrix() -> None:
    a, b = _blob(0, 0), _blob(0, 4)  # 8x8 blobs overlapping 8x4
    iou = iou_matrix(np.stack([a]), np.stack([a, b]))
    assert iou[0, 0] == pytest.approx(1.0)
    assert iou[0, 1] == pytest.approx(32 / 96)


def test_identical_instances_score_one() -> None:
    gt = np.stack([_blob(0, 0), _blob(16, 16)])
    acc = IMQAccumulator()
    acc.add_frame(gt[::-1].copy(), gt)  # order does not matter: Hungarian matching
    result = acc.result()["0.5"]
    assert (result["TP"], result["FP"], result["FN"]) == (2, 0, 0)
    for name in ("MAD", "MSE", "Grad", "Conn", "IoU"):
        assert result[name] == pytest.approx(1.0, abs=1e-5)


def test_unmatched_instances_count_as_fp_and_fn() -> None:
    gt = np.stack([_blob(0, 0), _blob(16, 16)])
    pred = np.stack([_blob(0, 0), _blob(0, 20)])  # second prediction misses
    acc = IMQAccumulator()
    acc.add_frame(pred, gt)
    result = acc.result()["0.5"]
    assert (result["TP"], result["FP"], result["FN"]) == (1, 1, 1)
    assert result["MAD"] == pytest.approx(1.0 / (1 + 0.5 + 0.5), abs=1e-5)
    empty = IMQAccumulator()
    empty.add_frame(np.zeros((0, 32, 32), np.float32), gt)
    assert empty.result()["0.75"]["FN"] == 2 and empty.result()["0.75"]["MAD"] == 0.0


def test_similarity_of_an_offset() -> None:
    gt = _blob(4, 4, size=16)
    pred = gt * 0.98  # MAD inside the union (256 px): 0.02 * 256 / 257
    mad_score = similarity(pred, gt)[0]
    assert mad_score == pytest.approx(1 - 10 * 0.02 * 256 / 257, abs=1e-4)
