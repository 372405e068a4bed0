"""Helpers for the sparse detail-branch tests: a layers container, random weights and inputs,
and the dense masked restatement of spec §10 used as an independent oracle.

The oracle works on whole zero-filled dense maps with torch.nn.functional convs and multiplies
every result by the site mask; it reads the *raw checkpoint* tensors (KRSC, including the raw
1x1 reinterpretation) and shares no code with actormatte.matting.sparse*.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from actormatte.matting.sparse import detail_layer_modules


class StandInFFN(nn.Module):
    """inst_spec_layer stand-in: LN(z + linear2(relu(linear1 z))), eps 1e-5."""

    def __init__(self) -> None:
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(64, 64), nn.Linear(64, 64)
        self.norm = nn.LayerNorm(64)

    def forward(self, z: Tensor) -> Tensor:
        return self.norm(z + self.linear2(torch.relu(self.linear1(z))))


class DetailLayersStandIn(nn.Module):
    """The decoder's view of predict_details: inst_spec_layer + detail_layer_modules()."""

    def __init__(self) -> None:
        super().__init__()
        self.inst_spec_layer = StandInFFN()
        for name, module in detail_layer_modules():
            self.add_module(name, module)


def random_checkpoint(seed: int) -> dict[str, Tensor]:
    """A raw (checkpoint-layout) state dict for DetailLayersStandIn with O(1) activations."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, tensor in DetailLayersStandIn().state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(tensor.shape, generator=gen) * 0.4 + 0.8
        elif tensor.dim() >= 2:
            std = math.sqrt(2.0 / tensor[0].numel())
            state[key] = torch.randn(tensor.shape, generator=gen) * std
        elif key.endswith(".weight") and "norm" not in key:
            state[key] = torch.rand(tensor.shape, generator=gen) * 0.4 + 0.8
        else:
            state[key] = torch.randn(tensor.shape, generator=gen) * 0.1
    return state


def random_inputs(seed: int, frames: int, instances: int, height: int,
                  width: int) -> dict[str, Tensor]:
    """Random features and blob-shaped site masks (about a third of the pixels)."""
    gen = torch.Generator().manual_seed(seed)

    def coarse(size: int, factor: int) -> int:
        return -(-size // factor) if factor == 2 else coarse(-(-size // 2), factor // 2)

    noise = torch.rand(frames * instances, 1, height, width, generator=gen)
    blobs = F.avg_pool2d(noise, 7, 1, 3) > 0.52
    return {
        "feat_os8": torch.randn(frames, 64, coarse(height, 8), coarse(width, 8), generator=gen),
        "kernels": torch.randn(frames, instances, 64, generator=gen),
        "fea1": torch.randn(frames, 32, height, width, generator=gen),
        "fea2": torch.randn(frames, 32, coarse(height, 2), coarse(width, 2), generator=gen),
        "fea3": torch.randn(frames, 64, coarse(height, 4), coarse(width, 4), generator=gen),
        "unknown": blobs.view(frames, instances, height, width).to(torch.uint8),
    }


# ---------------------------------------------------------------- the dense masked oracle


def _down(mask: Tensor) -> Tensor:
    return F.max_pool2d(mask, 3, 2, 1)


def _subm(x: Tensor, state: dict[str, Tensor], key: str, mask: Tensor) -> Tensor:
    weight = state[key + ".weight"]  # KRSC (Cout, k, k, Cin)
    bias = state.get(key + ".bias")
    out_channels, k, _, in_channels = weight.shape
    if k == 1:  # spconv: features @ raw memory viewed as (Cin, Cout)
        matrix = weight.reshape(-1).reshape(in_channels, out_channels)
        out = torch.einsum("nchw,co->nohw", x, matrix)
        out = out if bias is None else out + bias.view(1, -1, 1, 1)
    else:
        out = F.conv2d(x, weight.permute(0, 3, 1, 2), bias, padding=1)
    return out * mask


def _inverse(x: Tensor, state: dict[str, Tensor], key: str, fine_mask: Tensor) -> Tensor:
    weight = state[key + ".weight"].permute(3, 0, 1, 2)  # (Cin, Cout, 3, 3)
    out = F.conv_transpose2d(x, weight, stride=2, padding=1, output_padding=1)
    return out[..., : fine_mask.shape[-2], : fine_mask.shape[-1]] * fine_mask


def _bn(x: Tensor, state: dict[str, Tensor], key: str, mask: Tensor) -> Tensor:
    shape = (1, -1, 1, 1)
    mean, var = state[key + ".running_mean"].view(shape), state[key + ".running_var"].view(shape)
    gamma, beta = state[key + ".weight"].view(shape), state[key + ".bias"].view(shape)
    return ((x - mean) / torch.sqrt(var + 1e-5) * gamma + beta) * mask


def _lrelu(x: Tensor) -> Tensor:
    return torch.where(x > 0, x, 0.2 * x)


def _densify(logits: Tensor, mask: Tensor) -> Tensor:
    dense = logits * mask - 99.0
    return torch.where(mask > 0, dense + 99.0, dense)


def oracle_predict_details(state: dict[str, Tensor], ffn: nn.Module, feat_os8: Tensor,
                           kernels: Tensor, fea1: Tensor, fea2: Tensor, fea3: Tensor,
                           unknown: Tensor) -> tuple[Tensor, Tensor]:
    """Spec §10.3 on dense (T*N, C, h, w) maps; returns (os4, os1) dense logits."""
    frames, instances, height, width = unknown.shape
    m1 = unknown.reshape(frames * instances, 1, height, width).float()
    m2 = _down(m1)
    m4 = _down(m2)
    m8 = _down(m4)

    def per_element(dense: Tensor) -> Tensor:  # (T, C, h, w) -> (T*N, C, h, w)
        return dense.repeat_interleave(instances, dim=0)

    s = state
    z = per_element(feat_os8) * kernels.reshape(-1, 64)[:, :, None, None] * m8
    z = ffn(z.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) * m8
    z = _lrelu(_bn(_inverse(z, s, "layer3.0", m4), s, "layer3.1", m4))
    z = _subm(z, s, "layer3.3", m4)
    d3 = per_element(fea3) * m4
    g = _lrelu(_bn(_subm(torch.cat([d3, z], 1), s, "guidance_layer.0", m4), s,
                   "guidance_layer.1", m4))
    g = torch.sigmoid(_subm(g, s, "guidance_layer.3", m4)) * m4
    z = _bn(torch.relu(_subm(d3 * g, s, "layer3_smooth.0", m4)), s, "layer3_smooth.2", m4)
    o4 = _lrelu(_bn(_subm(z, s, "refine_OS4.0", m4), s, "refine_OS4.1", m4))
    o4 = _subm(o4, s, "refine_OS4.3", m4)
    z = _lrelu(_bn(_inverse(z, s, "layer4.0", m2), s, "layer4.1", m2))
    z = torch.cat([per_element(fea2) * m2, _subm(z, s, "layer4.3", m2)], 1)
    z = _bn(torch.relu(_subm(z, s, "layer4_smooth.0", m2)), s, "layer4_smooth.2", m2)
    z = _lrelu(_bn(_inverse(z, s, "layer5.0", m1), s, "layer5.1", m1))
    z = torch.cat([per_element(fea1) * m1, _subm(z, s, "layer5.3", m1)], 1)
    z = _bn(torch.relu(_subm(z, s, "layer5_smooth.0", m1)), s, "layer5_smooth.2", m1)
    o1 = _lrelu(_bn(_subm(z, s, "refine_OS1.0", m1), s, "refine_OS1.1", m1))
    o1 = _subm(o1, s, "refine_OS1.3", m1)
    return _densify(o4, m4), _densify(o1, m1)
