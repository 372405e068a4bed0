"""--foreground: premultiplied colour from the plate and one actor's alpha (pymatting ML)."""

from __future__ import annotations

import numpy as np
import pytest

from actormatte.errors import ShapeError
from actormatte.export.foreground import actor_box, estimate_foreground, naive_foreground


def _composite(size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A soft disc of known colour over a striped background: (plate, alpha, true fg)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    radius = np.hypot(yy - size / 2, xx - size / 2)
    alpha = np.clip((size * 0.3 - radius) / 6.0, 0, 1).astype(np.float32)
    fg = np.stack([0.9 + 0 * xx, 0.4 + 0.2 * yy / size, 0.1 + 0 * xx], axis=-1)
    bg = np.stack([0.1 + 0.8 * ((xx // 4) % 2), 0.7 + 0 * xx, 0.9 - 0.5 * yy / size], axis=-1)
    plate = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return plate.astype(np.float32), alpha, fg.astype(np.float32)


def test_estimate_beats_plate_times_alpha_on_edges() -> None:
    plate, alpha, fg = _composite()
    estimate = estimate_foreground(plate, alpha)
    truth = fg * alpha[..., None]
    edge = (alpha > 0) & (alpha < 1)
    ours = np.abs(estimate - truth)[edge].mean()
    naive = np.abs(naive_foreground(plate, alpha) - truth)[edge].mean()
    assert ours < 0.5 * naive


def test_zero_alpha_is_black_and_solid_alpha_is_the_plate() -> None:
    plate, alpha, _ = _composite()
    estimate = estimate_foreground(plate, alpha)
    assert np.all(estimate[alpha == 0] == 0)
    assert np.array_equal(estimate[alpha == 1], plate[alpha == 1])
    assert not estimate_foreground(plate, np.zeros_like(alpha)).any()


def test_scene_linear_values_above_one_are_kept() -> None:
    plate, alpha, _ = _composite()
    hdr = plate * 4.0 - 0.5  # highlights above 1 and negatives
    hdr[0, 0] = -0.5
    estimate = estimate_foreground(hdr, alpha)
    # The crop is mapped to 0..1 by its range for pymatting (which clamps) and back.
    low, high = float(hdr.min()), float(hdr.max())
    reference = estimate_foreground((hdr - low) / (high - low), alpha)
    inside = alpha > 0
    expected = reference[inside] / alpha[inside][:, None] * (high - low) + low
    np.testing.assert_allclose(estimate[inside] / alpha[inside][:, None], expected, atol=1e-4)
    assert estimate.max() > 1.5


def test_box_follows_the_actor() -> None:
    alpha = np.zeros((40, 50), np.float32)
    alpha[10:12, 20:30] = 0.5
    assert actor_box(alpha, 4) == (slice(6, 16), slice(16, 34))
    assert actor_box(np.zeros((4, 4), np.float32), 4) is None
    with pytest.raises(ShapeError):
        estimate_foreground(np.zeros((4, 4, 3), np.float32), np.zeros((4, 5), np.float32))


def test_nan_and_inf_plate_pixels_count_as_zero() -> None:
    plate, alpha, _ = _composite()
    plate[30, 30] = np.nan
    plate[31, 31] = np.inf
    estimate = estimate_foreground(plate, alpha)
    assert np.isfinite(estimate).all()


def test_only_the_estimator_module_is_compiled() -> None:
    # ``import pymatting`` would JIT-compile the whole package (~79 CPU-s on a fresh cache).
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from actormatte.export.foreground import estimate_foreground\n"
            "out = estimate_foreground(np.ones((8, 8, 3), np.float32), "
            "np.full((8, 8), 0.5, np.float32))\n"
            "assert 'pymatting' not in sys.modules, 'the whole package was imported'\n"
            "assert abs(float(out.mean()) - 0.5) < 1e-3\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
