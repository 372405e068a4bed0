"""Winograd F(2x2, 3x3) convolution against F.conv2d (shapes, odd sizes, bias, cache, fallback)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actormatte.propagation import winograd


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize(("batch", "c_in", "c_out", "height", "width"), [
    (1, 8, 4, 8, 8), (2, 16, 8, 7, 9), (3, 5, 7, 1, 1), (2, 64, 32, 11, 6), (1, 3, 2, 2, 13),
])
@pytest.mark.parametrize("with_bias", [False, True])
def test_matches_conv2d(batch: int, c_in: int, c_out: int, height: int, width: int,
                        with_bias: bool) -> None:
    gen = torch.Generator().manual_seed(batch * 1000 + c_in * 10 + height + width)
    x = torch.randn(batch, c_in, height, width, generator=gen)
    weight = torch.randn(c_out, c_in, 3, 3, generator=gen)
    bias = torch.randn(c_out, generator=gen) if with_bias else None
    ref = F.conv2d(x, weight, bias, padding=1)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        out = winograd.conv3x3_winograd(x.contiguous(memory_format=memory_format), weight, bias)
        assert out.shape == ref.shape
        assert _relative_error(out, ref) < 1e-5


def test_banded_equals_single_band(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 12, 13, 10, generator=gen)
    weight = torch.randn(6, 12, 3, 3, generator=gen)
    ref = F.conv2d(x, weight, padding=1)
    monkeypatch.setattr(winograd, "BAND_TILES", 7)  # several bands, a short last one
    assert _relative_error(winograd.conv3x3_winograd(x, weight), ref) < 1e-5


def test_module_path_caches_and_invalidates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(winograd, "MIN_CHANNEL_PRODUCT", 1)
    conv = nn.Conv2d(16, 8, 3, padding=1).eval()
    x = torch.randn(1, 16, 9, 9)
    with torch.no_grad():
        out = winograd.conv3x3_same(conv, x)
        assert _relative_error(out, conv(x)) < 1e-5
        assert "_winograd_filters" in conv.__dict__
        assert set(conv.state_dict()) == {"weight", "bias"}
        conv.load_state_dict(nn.Conv2d(16, 8, 3, padding=1).state_dict())
        assert _relative_error(winograd.conv3x3_same(conv, x), conv(x)) < 1e-5
        part = winograd.conv3x3_same(conv, x[:, 4:], slice(4, None), with_bias=False)
        ref = F.conv2d(x[:, 4:], conv.weight[:, 4:], None, padding=1)
        assert _relative_error(part, ref) < 1e-5


def test_falls_back_when_not_applicable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(winograd, "MIN_CHANNEL_PRODUCT", 1)
    x = torch.randn(1, 4, 6, 6)
    strided = nn.Conv2d(4, 4, 3, stride=2, padding=1)
    assert not winograd.winograd_applies(x, strided, 4)
    assert not winograd.winograd_applies(x.double(), nn.Conv2d(4, 4, 3, padding=1).double(), 4)
    assert winograd.winograd_applies(x, nn.Conv2d(4, 4, 3, padding=1), 4)
    conv = nn.Conv2d(4, 4, 3, padding=1)
    with torch.enable_grad():  # training: exact conv, gradients reach the weight
        winograd.conv3x3_same(conv, x).sum().backward()
    assert conv.weight.grad is not None
    assert "_winograd_filters" not in conv.__dict__


def test_filter_transform_equals_g_g_gt_in_float64() -> None:
    gen = torch.Generator().manual_seed(5)
    weight = torch.randn(7, 5, 3, 3, generator=gen)
    g_mat = torch.tensor(((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0)),
                         dtype=torch.float64)
    ref = torch.einsum("ak,oikl,bl->abio", g_mat, weight.double(), g_mat).reshape(16, 5, 7)
    out = winograd.winograd_filter(weight)
    assert out.shape == (16, 5, 7) and out.dtype == torch.float32 and out.is_contiguous()
    assert float((out.double() - ref).abs().max() / ref.abs().max()) < 1e-6
