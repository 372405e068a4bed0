"""--exclusive and --residual: Σα ≤ 1 as stored, untouched pixels bit-identical, rest = 1 - Σα."""

from __future__ import annotations

import numpy as np
import pytest

from actormatte.errors import ShapeError
from actormatte.export.coverage import make_exclusive, residual


def _overlapping(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, size=(3, 48, 64)).astype(np.float32)


@pytest.mark.parametrize("half", [True, False])
def test_exclusive_bounds_the_sum_as_stored(half: bool) -> None:
    alphas = _overlapping()
    out = make_exclusive(alphas, half)
    dtype = np.float16 if half else np.float32
    total = alphas.sum(axis=0, dtype=np.float64)
    under = total <= 1.0
    assert under.any() and (~under).any()
    stored = out[:, ~under].astype(dtype)
    assert np.array_equal(stored.astype(np.float32), out[:, ~under])  # exactly representable
    assert stored.astype(np.float64).sum(axis=0).max() <= 1.0
    assert np.array_equal(out[:, under].view(np.uint32), alphas[:, under].view(np.uint32))
    # Scaled pixels keep the actors' proportions and sum to 1 within a storage step.
    over = ~under
    step = 2.0 ** -10 if half else 2.0 ** -23
    assert np.all(out[:, over].sum(axis=0, dtype=np.float64) >= 1.0 - 3 * step)
    ratio = out[0, over] / np.maximum(out[1, over], 1e-6)
    expected = alphas[0, over] / np.maximum(alphas[1, over], 1e-6)
    assert np.allclose(ratio[alphas[1, over] > 0.1], expected[alphas[1, over] > 0.1], rtol=5e-3)


def test_exclusive_without_overlap_is_the_same_array() -> None:
    alphas = np.zeros((2, 8, 8), dtype=np.float32)
    alphas[0, :, :4] = 0.7
    alphas[1, :, 4:] = 1.0
    assert make_exclusive(alphas, True) is alphas


def test_residual_is_what_no_actor_covers() -> None:
    alphas = np.zeros((2, 4, 4), dtype=np.float32)
    alphas[0] = 0.25
    alphas[1, :2] = 0.5
    rest = residual(alphas, half=True)
    assert np.all(rest[:2] == 0.25) and np.all(rest[2:] == 0.75)
    overlapping = _overlapping(1)
    exclusive = make_exclusive(overlapping, True)
    rest = residual(exclusive, True)
    total = exclusive.astype(np.float16).astype(np.float64).sum(axis=0) + rest
    assert total.max() <= 1.0 and total.min() >= 1.0 - 2 ** -10
    assert residual(overlapping, False).min() == 0.0  # Σα > 1 without --exclusive: clipped


def test_exclusive_rejects_a_2d_array() -> None:
    with pytest.raises(ShapeError):
        make_exclusive(np.zeros((4, 4), np.float32), True)
