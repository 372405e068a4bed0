"""Winograd F(2x2, 3x3) convolution for the big stride-1 3x3 convolutions of XMem on CPU.

Called by :mod:`actormatte.propagation.blocks` (group convolutions, split fuser convolutions,
decoder skip convolutions). A 3x3, stride-1, padding-1 convolution is computed tile by tile:
every 4x4 input tile ``d`` becomes ``V = Bᵀ d B`` (additions only), every filter ``g`` becomes
``U = G g Gᵀ`` (once per weight, one GEMM), the 16 positions of the transformed tile are 16
independent matrix products ``M = V U`` over channels, and ``Aᵀ M A`` gives the 2x2 output
tile. That is 16 multiplies per 4 outputs instead of 36: 2.25x less GEMM work. The result
equals ``F.conv2d(x, weight, bias, padding=1)`` up to float rounding (the transforms add and
subtract values of similar magnitude; relative error ~1e-6 in float32).

Feature maps are channels-last (NHWC) throughout, so the transforms are strided slices along
H and W with contiguous channel rows, and the output comes back NHWC like oneDNN's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Filter transform G of F(2x2, 3x3) (4x3); Bᵀ and Aᵀ are written out as additions below.
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))

# Convolutions with C_in * C_out below this stay on
# F.conv2d: the transforms are memory-bound and only pay off for wide layers.
MIN_CHANNEL_PRODUCT = 256 * 256

# Tiles per band (transformed input of 16 * BAND_TILES * C_in floats at a time).
BAND_TILES = 1024


def winograd_filter(weight: torch.Tensor) -> torch.Tensor:
    """Transformed filter ``G g Gᵀ`` for every (output, input) channel pair, as GEMM operands.

    The transform is linear in the 9 taps, ``vec(G g Gᵀ) = (G ⊗ G) vec(g)``, so it is one GEMM
    of the (16, 9) Kronecker matrix with the taps laid out (9, C_in * C_out), in the weight's
    dtype (float32 rounding, ~1e-7 relative; 5x faster than the float64 einsum it replaced,
    which was most of the first XMem steps' fixed cost).

    Shape:
        weight: (C_out, C_in, 3, 3) -> (16, C_in, C_out)
    """
    c_out, c_in = weight.shape[:2]
    g_mat = torch.tensor(_G, dtype=torch.float64)  # (4, 3)
    kron = torch.kron(g_mat, g_mat).to(weight.device, weight.dtype)  # (16, 9)
    taps = weight.detach().permute(2, 3, 1, 0).reshape(9, c_in * c_out)  # (3,3,Ci,Co) copy
    return torch.mm(kron, taps).view(16, c_in, c_out)  # (16, C_in, C_out), contiguous


def _input_transform(padded: torch.Tensor, out: torch.Tensor) -> None:
    """``Bᵀ d B`` of every 4x4 tile (stride 2) of a padded NHWC band, written into ``out``.

    Shape:
        padded: (B, 2*th+2, 2*tw+2, C) -> out: (4, 4, B, th, tw, C)
    """
    batch, th, tw, channels = out.shape[2:]
    # Column transform (along W) of columns 2j..2j+3 of every tile, then of rows 2i..2i+3.
    cols = padded.new_empty(4, batch, padded.shape[1], tw, channels)  # (4, B, 2*th+2, tw, C)
    c = [padded[:, :, k:k + 2 * tw:2] for k in range(4)]  # each (B, 2*th+2, tw, C)
    torch.sub(c[0], c[2], out=cols[0])
    torch.add(c[1], c[2], out=cols[1])
    torch.sub(c[2], c[1], out=cols[2])
    torch.sub(c[1], c[3], out=cols[3])
    r = [cols[:, :, k:k + 2 * th:2] for k in range(4)]  # each (4, B, th, tw, C)
    torch.sub(r[0], r[2], out=out[0])
    torch.add(r[1], r[2], out=out[1])
    torch.sub(r[2], r[1], out=out[2])
    torch.sub(r[1], r[3], out=out[3])


def _output_transform(m: torch.Tensor, out: torch.Tensor) -> None:
    """``Aᵀ M A`` of every transformed tile, written into an NHWC band.

    Shape:
        m: (4, 4, B, th, tw, C) -> out: (B, 2*th, 2*tw, C)
    """
    batch, th, tw, channels = m.shape[2:]
    rows = m.new_empty(2, 4, batch, th, tw, channels)  # (2, 4, B, th, tw, C)
    torch.add(m[0], m[1], out=rows[0]).add_(m[2])
    torch.sub(m[1], m[2], out=rows[1]).sub_(m[3])
    tiles = out.view(batch, th, 2, tw, 2, channels).permute(2, 4, 0, 1, 3, 5)
    # tiles: (2, 2, B, th, tw, C) view of out
    torch.add(rows[:, 0], rows[:, 1], out=tiles[:, 0]).add_(rows[:, 2])
    torch.sub(rows[:, 1], rows[:, 2], out=tiles[:, 1]).sub_(rows[:, 3])


def conv3x3_winograd(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     filter_u: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` by Winograd F(2x2, 3x3).

    Odd H or W are zero-padded to even and the output cropped back. The map is processed in
    bands of tile rows so the transformed tiles (4x the input) stay small and cache-warm.

    Args:
        x: input map (any memory format; channels-last avoids a copy).
        weight: 3x3 filters.
        bias: per-output-channel bias, or None.
        filter_u: ``winograd_filter(weight)`` when the caller caches it; made here otherwise.

    Shape:
        x: (B, C_in, H, W), weight: (C_out, C_in, 3, 3), bias: (C_out,) -> (B, C_out, H, W),
        returned channels-last.
    """
    batch, c_in, height, width = x.shape
    c_out = weight.shape[0]
    out_h, out_w = height + height % 2, width + width % 2
    th, tw = out_h // 2, out_w // 2
    u = winograd_filter(weight) if filter_u is None else filter_u  # (16, C_in, C_out)
    padded = x.new_zeros(batch, out_h + 2, out_w + 2, c_in)  # (B, H'+2, W'+2, C_in)
    padded[:, 1:height + 1, 1:width + 1] = x.permute(0, 2, 3, 1)  # NCHW -> NHWC view
    y = x.new_empty(batch, out_h, out_w, c_out)  # (B, H', W', C_out)
    band = min(th, max(1, BAND_TILES // (batch * tw)))
    v_buf = x.new_empty(16 * batch * band * tw * c_in)
    m_buf = x.new_empty(16 * batch * band * tw * c_out)
    for i0 in range(0, th, band):
        bt = min(band, th - i0)
        tiles = batch * bt * tw
        v = v_buf[:16 * tiles * c_in].view(4, 4, batch, bt, tw, c_in)
        _input_transform(padded[:, 2 * i0:2 * (i0 + bt) + 2], v)
        m = m_buf[:16 * tiles * c_out].view(16, tiles, c_out)
        torch.bmm(v.view(16, tiles, c_in), u, out=m)  # (16, P_band, C_out)
        _output_transform(m.view(4, 4, batch, bt, tw, c_out), y[:, 2 * i0:2 * (i0 + bt)])
    y = y[:, :height, :width]  # (B, H, W, C_out)
    if bias is not None:
        y = y + bias if y.shape[1:3] != (out_h, out_w) else y.add_(bias)
    elif y.shape[1:3] != (out_h, out_w):
        y = y.contiguous()
    return y.permute(0, 3, 1, 2)  # (B, C_out, H, W), channels-last memory


def winograd_applies(x: torch.Tensor, conv: nn.Conv2d, in_channels: int) -> bool:
    """Whether ``conv`` (restricted to ``in_channels`` inputs) on ``x`` should use Winograd.

    Only CPU float32 outside autocast, 3x3 stride-1 padding-1 dilation-1 ungrouped convolutions
    wide enough for the transforms to pay off.
    """
    return (x.device.type == "cpu" and x.dtype == torch.float32
            and conv.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and in_channels * conv.out_channels >= MIN_CHANNEL_PRODUCT)


_FilterCache = dict[tuple[int | None, int | None], tuple[tuple[int, int], torch.Tensor]]


def _cache(conv: nn.Conv2d) -> _FilterCache:
    cache: _FilterCache = conv.__dict__.setdefault("_winograd_filters", {})
    return cache


def filter_cache_of(conv: nn.Conv2d) -> dict[tuple[int | None, int | None], torch.Tensor]:
    """The filters cached on ``conv`` and still valid, by (start, stop) of the input channels.

    Shape:
        -> values (16, C_part, C_out)
    """
    version = (conv.weight.data_ptr(), conv.weight._version)
    return {part: hit[1] for part, hit in conv.__dict__.get("_winograd_filters", {}).items()
            if hit[0] == version}


def install_filter(conv: nn.Conv2d, channels: slice, filter_u: torch.Tensor) -> None:
    """Cache ``filter_u`` (``winograd_filter(conv.weight[:, channels])``, computed earlier).

    Used by :mod:`actormatte.propagation.filter_cache`, which checks it matches the weight.

    Shape:
        filter_u: (16, C_part, C_out)
    """
    version = (conv.weight.data_ptr(), conv.weight._version)
    _cache(conv)[(channels.start, channels.stop)] = (version, filter_u)


def _cached_filter(conv: nn.Conv2d, channels: slice) -> torch.Tensor:
    """``winograd_filter`` of ``conv.weight[:, channels]``, cached on the module.

    The cache is a plain attribute (not a buffer: ``state_dict()`` is unchanged) keyed by the
    weight's storage and version counter, so ``load_state_dict`` or any in-place update of the
    weight makes it stale and it is recomputed.

    Shape:
        -> (16, C_part, C_out)
    """
    weight = conv.weight
    part = (channels.start, channels.stop)
    version = (weight.data_ptr(), weight._version)
    cache = _cache(conv)
    hit = cache.get(part)
    if hit is None or hit[0] != version:
        hit = (version, winograd_filter(weight[:, channels]))
        cache[part] = hit
    return hit[1]


def conv3x3_same(conv: nn.Conv2d, x: torch.Tensor, channels: slice = slice(None),
                 with_bias: bool = True) -> torch.Tensor:
    """``conv`` restricted to input ``channels`` (bias optional), Winograd where it pays off.

    Falls back to ``F.conv2d`` for anything but wide 3x3 stride-1 padding-1 float32 CPU
    convolutions without autograd through the weight (the cached filter is detached).

    Shape:
        x: (B, C_part, H, W) -> (B, C_out, H', W')
    """
    weight = conv.weight[:, channels]  # (C_out, C_part, k, k)
    bias = conv.bias if with_bias else None
    grad_to_weight = torch.is_grad_enabled() and weight.requires_grad
    if grad_to_weight or not winograd_applies(x, conv, weight.shape[1]):
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    return conv3x3_winograd(x, weight, bias, _cached_filter(conv, channels))
