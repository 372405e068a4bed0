"""The coverage constraint (``--exclusive``) and the residual layer (``--residual``).

Called by :class:`actormatte.export.comp.CompWriter` on each frame's alphas just before they are
written. InstMatt's multi-instance constraint says instance alphas and the background sum to one;
our actors are matted one by one, so where they overlap Σα can exceed 1, which double-counts
light when a compositor adds the actors back up.

- :func:`make_exclusive`: where Σα > 1, every actor is scaled by ``1 / Σα`` so that Σα ≤ 1 holds
  on the values as *stored* (half or float32: the scaled values are rounded toward zero).
  Pixels with Σα ≤ 1 are returned bit-identical.
- :func:`residual`: ``rest = 1 - Σα`` clipped to 0..1 (what no actor covers), computed from the
  stored actor values and also rounded toward zero, so ``Σα + rest ≤ 1`` in the file and
  ``1 - (Σα + rest)`` is at most one step of the stored precision.
"""

from __future__ import annotations

import numpy as np

from actormatte.errors import ShapeError

#: Default name of the residual layer; a reserved actor name while ``--residual`` is on.
RESIDUAL_LAYER = "rest"


def _round_down(values: np.ndarray, dtype: type[np.floating]) -> np.ndarray:
    """``values`` (float64, >= 0) in ``dtype``, rounded toward zero; returned as float32."""
    stored = values.astype(dtype)
    over = stored.astype(np.float64) > values
    stored[over] = np.nextafter(stored[over], dtype(0))
    return stored.astype(np.float32)


def storage_dtype(half: bool) -> type[np.floating]:
    """The numpy type the EXR channels are stored in."""
    return np.float16 if half else np.float32


def make_exclusive(alphas: np.ndarray, half: bool) -> np.ndarray:
    """Scale overlapping actors so Σα ≤ 1; pixels with Σα ≤ 1 stay bit-identical.

    Args:
        alphas: Actor alphas in 0..1 (already clipped), actor order.
        half: The file stores half floats (else float32); Σα ≤ 1 holds after that rounding.

    Shape:
        alphas: (N, H, W) float32. Returns (N, H, W) float32.

    Raises:
        ShapeError: ``alphas`` is not (N, H, W).
    """
    if alphas.ndim != 3:
        raise ShapeError(f"alphas must be (N, H, W), got {alphas.shape}")
    total = alphas.sum(axis=0, dtype=np.float64)  # (H, W)
    over = total > 1.0
    if not over.any():
        return alphas
    out = alphas.copy()
    scaled = alphas[:, over].astype(np.float64) / total[over]  # (N, P) for the P pixels over
    out[:, over] = _round_down(scaled, storage_dtype(half))
    return out


def residual(alphas: np.ndarray, half: bool) -> np.ndarray:
    """``1 - Σα`` clipped to 0..1, from the stored actor values, rounded toward zero.

    Shape:
        alphas: (N, H, W) float32 in 0..1. Returns (H, W) float32.
    """
    stored = alphas.astype(storage_dtype(half)).astype(np.float64)
    rest = np.clip(1.0 - stored.sum(axis=0), 0.0, 1.0)  # (H, W)
    return _round_down(rest, storage_dtype(half))
