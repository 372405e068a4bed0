"""Sparse conv modules of MaGGIe's detail branch, with the checkpoint's spconv weight layout.

The modules keep spconv 2.3's parameter names and KRSC layout ``(Cout, kh, kw, Cin)`` so that the
official ``decoder.*`` keys load as they are. They compute on a feature matrix ``(S, C)`` plus
the rulebooks of :mod:`actormatte.matting.sparse_ops` (pure PyTorch, no spconv).

**The 1x1 SubM quirk (MAGGIE_SPEC.md §10.2).** spconv runs a 1x1 submanifold conv as
``features @ weight.view(Cin, Cout)``: the raw memory of the KRSC weight reinterpreted as a
(Cin, Cout) matrix. For Cin = Cout that is the stored matrix transposed; for Cin != Cout the
channels are scrambled. The official checkpoints were trained that way. :class:`SubMConv2d` with
kernel 1 therefore *stores the effective weight* (what a plain KRSC 1x1 conv would hold) and
converts at the checkpoint boundary only: a load_state_dict pre-hook applies
:func:`spconv_1x1_to_dense`, a state_dict post-hook applies its exact inverse
:func:`dense_to_spconv_1x1`, so ``state_dict()`` gives back the checkpoint bit for bit.

Called by :mod:`actormatte.matting.sparse` (``detail_layer_modules``, ``predict_details``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from actormatte.matting.sparse_ops import (
    InverseGroup,
    TileRules,
    gather_matmul,
    inverse_conv,
    pad_rows,
    subm3_weight_matrix,
    tile_conv,
)


def spconv_1x1_to_dense(weight: Tensor) -> Tensor:
    """Checkpoint 1x1 SubM weight -> the weight a plain 1x1 conv needs for the same output.

    spconv computes ``out[j] = sum_i in[i] * flat[i*Cout + j]`` with ``flat = weight.reshape(-1)``;
    the result holds that matrix as ``eff[j, 0, 0, i]``, so ``out = in @ eff.view(Cout, Cin).T``.
    A pure permutation of the values (bit-exact).

    Shape:
        (Cout, 1, 1, Cin) -> (Cout, 1, 1, Cin)
    """
    out_channels, _, _, in_channels = weight.shape
    spconv_matrix = weight.reshape(in_channels, out_channels)  # (Cin, Cout), raw reinterpretation
    return spconv_matrix.t().contiguous().reshape(out_channels, 1, 1, in_channels)


def dense_to_spconv_1x1(weight: Tensor) -> Tensor:
    """Exact inverse of :func:`spconv_1x1_to_dense` (effective weight -> checkpoint layout).

    Shape:
        (Cout, 1, 1, Cin) -> (Cout, 1, 1, Cin)
    """
    out_channels, _, _, in_channels = weight.shape
    spconv_matrix = weight.reshape(out_channels, in_channels).t()  # (Cin, Cout)
    return spconv_matrix.contiguous().reshape(out_channels, 1, 1, in_channels)


@dataclass(frozen=True)
class LevelRules:
    """Rulebooks of one resolution level, shared by every conv on it.

    Attributes:
        subm3: 3x3 SubM rules of the level: a tap table (S, 9) for gather-GEMM or the
            TileRules of the tiled dense path (None where no 3x3 SubM runs on the level).
        upsample: Inverse-conv rules from the next coarser level into this one.
        num_sites: S of the level.
    """

    subm3: Tensor | TileRules | None
    upsample: tuple[InverseGroup, ...] | None
    num_sites: int


class SparseConvModule(nn.Module):
    """Base of the sparse convs: a KRSC ``weight`` (Cout, k, k, Cin) and an optional bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(
            torch.zeros(out_channels, kernel_size, kernel_size, in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def spconv_weight(self) -> Tensor:
        """The weight in the checkpoint (spconv) layout, shape (Cout, k, k, Cin)."""
        return self.weight

    def extra_repr(self) -> str:
        """Channels and kernel for printing."""
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"bias={self.bias is not None}")


class SubMConv2d(SparseConvModule):
    """Submanifold conv (output sites = input sites), kernel 3 or 1 (see the module docstring).

    For kernel 1, ``weight`` holds the *effective* weight; checkpoints are converted by hooks.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 bias: bool = False) -> None:
        if kernel_size not in (1, 3):
            raise ValueError(f"SubMConv2d supports kernel 1 or 3, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, bias)
        if kernel_size == 1:
            self.register_load_state_dict_pre_hook(_load_1x1_hook)
            self.register_state_dict_post_hook(_save_1x1_hook)

    def spconv_weight(self) -> Tensor:
        """The weight in the checkpoint layout (the 1x1 remap undone)."""
        if self.kernel_size == 1:
            return dense_to_spconv_1x1(self.weight)
        return self.weight

    def forward(self, features: Tensor, rules: LevelRules) -> Tensor:
        """Shape: features (S, Cin) -> (S, Cout)."""
        if self.kernel_size == 1:
            matrix = self.weight.view(self.out_channels, self.in_channels).t()  # (Cin, Cout)
            if self.bias is None:
                return features @ matrix
            return torch.addmm(self.bias, features, matrix)
        if rules.subm3 is None:
            raise RuntimeError("3x3 SubM conv on a level without a 3x3 rulebook")
        if isinstance(rules.subm3, TileRules):
            return tile_conv(features, rules.subm3, self.weight, self.bias)
        weight = subm3_weight_matrix(self.weight)  # (9*Cin, Cout)
        return gather_matmul(pad_rows(features), rules.subm3, weight, self.bias)


class SparseConv2d(SparseConvModule):
    """3x3 stride-2 sparse conv of ``dummy_downscale``: weights only.

    The official model runs these only to create the coarser site sets; their values never
    reach an output. The site rule lives in :meth:`SiteSet.downsample`.
    """

    def forward(self, features: Tensor, rules: LevelRules) -> Tensor:
        """Not used: only the site sets of this layer matter (spec §10.1)."""
        raise NotImplementedError("dummy_downscale convs only define site sets; see SiteSet")


class SparseInverseConv2d(SparseConvModule):
    """3x3 inverse conv: coarse sites -> the fine sites of the matching stride-2 conv, no bias."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, bias=False)

    def forward(self, features: Tensor, rules: LevelRules) -> Tensor:
        """Shape: features (Sc, Cin) -> (S, Cout) on the level of ``rules``."""
        if rules.upsample is None:
            raise RuntimeError("inverse conv on a level without upsampling rules")
        return inverse_conv(features, rules.upsample, self.weight, rules.num_sites)


def _load_1x1_hook(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                   *_: Any) -> None:
    """load_state_dict pre-hook: checkpoint 1x1 SubM weight -> effective weight."""
    key = prefix + "weight"
    weight = state_dict.get(key)
    if isinstance(weight, Tensor) and weight.dim() == 4 and weight.shape[1:3] == (1, 1):
        state_dict[key] = spconv_1x1_to_dense(weight)


def _save_1x1_hook(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                   local_metadata: Any) -> None:
    """state_dict post-hook: effective 1x1 weight -> checkpoint layout."""
    key = prefix + "weight"
    if key in state_dict:
        state_dict[key] = dense_to_spconv_1x1(state_dict[key])


def run_sparse(sequence: nn.Module, features: Tensor, rules: LevelRules) -> Tensor:
    """Apply a Sequential of sparse convs, BatchNorm1d and activations to site features.

    Convs get the level's rules; BN (eval: per-channel affine) and activations act on the
    feature matrix rows, i.e. on the sites only.

    Shape:
        features (S_in, Cin) -> (S, Cout)
    """
    for layer in sequence.children():
        if isinstance(layer, SparseConvModule):
            features = layer(features, rules)
        else:
            features = layer(features)
    return features


def _conv_bn_act(conv: nn.Module, channels: int, tail: nn.Module) -> list[nn.Module]:
    return [conv, nn.BatchNorm1d(channels), nn.LeakyReLU(0.2), tail]


def build_detail_layers() -> list[tuple[str, nn.Module]]:
    """Fresh (zero-weight) detail-branch modules in checkpoint order (spec §10.3, §16, §18).

    Sequential indices follow the official SparseSequentials, so keys come out as e.g.
    ``layer3.0.weight`` (inverse conv), ``layer3.1.*`` (BN), ``layer3.3.weight`` (SubM).
    """
    return [
        ("dummy_downscale", nn.Sequential(
            SubMConv2d(3, 32, 3), SparseConv2d(32, 32, 3, bias=False),
            SparseConv2d(32, 64, 3, bias=False), SparseConv2d(64, 64, 3, bias=False))),
        ("layer3", nn.Sequential(*_conv_bn_act(
            SparseInverseConv2d(64, 64), 64, SubMConv2d(64, 64, 3)))),
        ("guidance_layer", nn.Sequential(*_conv_bn_act(
            SubMConv2d(128, 64, 1), 64, SubMConv2d(64, 64, 3, bias=True)), nn.Sigmoid())),
        ("layer3_smooth", nn.Sequential(
            SubMConv2d(64, 64, 1, bias=True), nn.ReLU(), nn.BatchNorm1d(64))),
        ("layer4", nn.Sequential(*_conv_bn_act(
            SparseInverseConv2d(64, 32), 32, SubMConv2d(32, 32, 1)))),
        ("layer4_smooth", nn.Sequential(
            SubMConv2d(64, 32, 1, bias=True), nn.ReLU(), nn.BatchNorm1d(32))),
        ("layer5", nn.Sequential(*_conv_bn_act(
            SparseInverseConv2d(32, 32), 32, SubMConv2d(32, 32, 3)))),
        ("layer5_smooth", nn.Sequential(
            SubMConv2d(64, 32, 1, bias=True), nn.ReLU(), nn.BatchNorm1d(32))),
        ("refine_OS4", nn.Sequential(
            SubMConv2d(64, 32, 3), nn.BatchNorm1d(32), nn.LeakyReLU(0.2),
            SubMConv2d(32, 1, 3, bias=True))),
        ("refine_OS1", nn.Sequential(
            SubMConv2d(32, 32, 3), nn.BatchNorm1d(32), nn.LeakyReLU(0.2),
            SubMConv2d(32, 1, 3, bias=True))),
    ]
