"""MaGGIe's metrics on hand-computable cases (formulas: actormatte.evaluation.maggie_metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from actormatte.evaluation import maggie_metrics as mm

H, W = 24, 32


def _const(value: float) -> np.ndarray:
    return np.full((H, W), value, dtype=np.float32)


def test_constant_offset_mad_mse_sad() -> None:
    gt, pred = _const(0.25), _const(0.35)
    pixels = H * W
    assert mm.sad(pred, gt) == pytest.approx(0.1 * pixels * 1e-3, rel=1e-6)
    assert mm.mad(pred, gt) == pytest.approx(0.1 / (pixels + 1e-6) * 1e10, rel=1e-6)
    assert mm.mse(pred, gt) == pytest.approx(0.01 / (pixels + 1e-6) * 1e10, rel=1e-5)


def test_average_divides_by_count_plus_eps() -> None:
    assert mm.average([1.0, 2.0, 3.0]) == pytest.approx(6.0 / (3 + 1e-6), rel=1e-12)


def test_gauss_filter_shape_and_norm() -> None:
    fx, fy = mm.gauss_derivative_filters()
    # half size = ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) * 1.4 * 0.01))) = ceil(3.62) = 4
    assert fx.shape == (9, 9)
    assert np.sum(fx ** 2) == pytest.approx(1.0)
    np.testing.assert_allclose(fx, -fx[:, ::-1], atol=1e-15)  # odd along x
    np.testing.assert_allclose(fy, fx.T)


def test_grad_profile_of_a_vertical_edge() -> None:
    edge = np.zeros((H, W), dtype=np.float32)
    edge[:, 16:] = 1.0
    magnitude = mm.grad_magnitude(edge, 0.0, 1.0)
    # Interior row (far from the zero-padded top and bottom): |sum_i g(i) * sum_k g'(k)| over
    # the k with 16 <= x + k < W (zero padding makes the right border an edge too).
    sigma, half = 1.4, 4
    k = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-k ** 2 / (2 * sigma ** 2)) / (sigma * math.sqrt(2 * math.pi))
    dg = -k * g / sigma ** 2
    norm = math.sqrt(float(((g[:, None] * dg[None, :]) ** 2).sum()))
    expected = np.array([abs(g.sum() * dg[(x + k >= 16) & (x + k < W)].sum()) / norm
                         for x in range(W)])
    np.testing.assert_allclose(magnitude[H // 2], expected / (1 + 1e-6), atol=1e-5)


def test_grad_shifted_edge_and_clip_normalisation() -> None:
    gt = np.zeros((H, W), dtype=np.float32)
    gt[:, 16:] = 1.0
    shifted = np.roll(gt, 1, axis=1)
    same = mm.grad(mm.grad_magnitude(gt, 0, 1), mm.grad_magnitude(gt, 0, 1))
    assert same == 0.0
    moved = mm.grad(mm.grad_magnitude(shifted, 0, 1), mm.grad_magnitude(gt, 0, 1))
    assert moved > 0.1
    # Min-max normalisation over the clip: a half-strength prediction scores like a full one.
    half = mm.grad(mm.grad_magnitude(gt * 0.5, 0.0, 0.5), mm.grad_magnitude(gt, 0.0, 1.0))
    assert half == pytest.approx(0.0, abs=1e-6)


def test_conn_uniform_half_against_ones() -> None:
    # Below 0.6 everything is connected; from 0.6 nothing: round-down level 0.5 everywhere.
    # phi_gt = 1 - 0.5 = 0.5, phi_pred = 1 - 0 = 1 -> 0.5 per pixel.
    assert mm.conn(_const(0.5), _const(1.0)) == pytest.approx(0.5 * H * W * 1e-3)


def test_conn_two_blobs_keeps_the_largest() -> None:
    gt = _const(1.0)
    pred = np.zeros((H, W), dtype=np.float32)
    pred[2:8, 2:10] = 1.0  # 48 px, the largest component
    pred[14:18, 20:24] = 1.0  # 16 px
    # Outside the largest blob the level is 0: phi_gt = 0 there; phi_pred = 0 on the small
    # blob, 1 elsewhere -> error 1 on every pixel outside both blobs.
    assert mm.conn(pred, gt) == pytest.approx((H * W - 48 - 16) * 1e-3)
    assert mm.conn(gt, gt) == 0.0


def test_largest_component_is_4_connected_and_ties_go_to_raster_order() -> None:
    binary = np.zeros((6, 6), dtype=np.uint8)
    binary[0, 4] = binary[1, 5] = 1  # diagonal: two components under 4-connectivity
    binary[4, 0] = binary[4, 1] = 1  # size 2
    binary[5, 4] = binary[5, 5] = 1  # size 2, later in raster order
    omega = mm.largest_component(binary)
    assert omega.sum() == 2 and omega[4, 0] and omega[4, 1]
    assert not mm.largest_component(np.zeros((4, 4), np.uint8)).any()


def _temporal(pred: list[np.ndarray], gt: list[np.ndarray]) -> mm.TemporalAccumulator:
    acc = mm.TemporalAccumulator()
    for p, g in zip(pred, gt, strict=True):
        acc.add(p, g)
    return acc


def test_dtssd_flickering_frame() -> None:
    gt = [_const(0.5)] * 3
    pred = [_const(0.5), _const(0.6), _const(0.5)]
    acc = _temporal(pred, gt)
    # d pred/dt = +0.1 then -0.1 on every pixel, gt static.
    assert acc.dtssd() == pytest.approx(0.1 * math.sqrt(2 * 0.01 * H * W), rel=1e-5)
    offset = _temporal([_const(0.7)] * 3, gt)
    assert offset.dtssd() == pytest.approx(0.0, abs=1e-9)
    assert offset.messddt() == pytest.approx(0.0, abs=1e-9)
    single = _temporal([_const(0.5)], [_const(0.5)])
    assert single.dtssd() is None and single.messddt() is None


def test_messddt_flicker_pins_the_reference_indexing() -> None:
    gt = [_const(0.5)] * 3
    pred = [_const(0.5), _const(0.6), _const(0.5)]
    acc = _temporal(pred, gt)
    # Errors per frame: 0, 0.01, 0. The reference compares every frame with the clip's second
    # frame: |0 - 0.01| for t=0 and |0.01 - 0.01| for t=1.
    expected = 0.01 * H * W / (2 * (H * W + 1)) * 1e4
    assert acc.messddt() == pytest.approx(expected, rel=1e-5)


def test_messddt_index_swaps_rows_and_columns() -> None:
    second = np.arange(H * W, dtype=np.float32).reshape(H, W) / (H * W)
    zero_flow = np.zeros((H, W, 2), dtype=np.int64)
    num, den = mm.messddt_pair(_const(0.0), _const(0.0), second, _const(0.0), zero_flow)
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    taken = second.ravel()[np.clip(cols, 0, H - 1) * W + np.clip(rows, 0, W - 1)]
    assert num == pytest.approx(float((taken.astype(np.float64) ** 2).sum()), rel=1e-5)
    assert den == H * W + 1


@pytest.mark.parametrize("border, mode", [(0, "constant"), (1, "nearest")])
def test_separable_amplitude_equals_the_2d_filter(border: int, mode: str) -> None:
    from scipy import ndimage

    image = np.random.default_rng(3).uniform(0, 1, (H, W)).astype(np.float32)
    fx, fy = mm.gauss_derivative_filters()
    gx = ndimage.correlate(image.astype(np.float64), fx, mode=mode, cval=0.0)
    gy = ndimage.correlate(image.astype(np.float64), fy, mode=mode, cval=0.0)
    # cv2.BORDER_CONSTANT = 0 (zero padding), cv2.BORDER_REPLICATE = 1 (InstMatt's padding)
    np.testing.assert_allclose(mm.gradient_amplitude(image, border), np.hypot(gx, gy), atol=2e-6)
