"""The typed result of one MaGGIe network forward, shared by the network and its callers.

Produced by :class:`actormatte.matting.decoder.MaggieDecoder` (through
:class:`actormatte.matting.model.MaggieNetwork`); read by the window runner and by
:mod:`actormatte.matting.reference`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MattingOutput:
    """Mattes of one clip at network resolution.

    Attributes:
        alpha_os8: coarse alpha (video: after the >= 0.95 -> 1 clamp and the box limit).
        alpha_os4: OS4 detail prediction, 0 off the detail sites.
        alpha_os1: OS1 detail prediction, exactly 0 off the detail sites.
        refined: the fused OS8/OS4/OS1 matte, *before* the official temporal rule
            (:func:`actormatte.matting.temporal.official_temporal_rule`).
        detail_mask: uint8 0/1, the pixels the detail branch refined.
        diff_forward: video only: sigmoid of the change between frame t-1 and t (0.5 at t=0).
        diff_backward: video only: sigmoid of the change between frame t+1 and t (0.5 at T-1).

    Shape:
        alpha_*, refined, detail_mask: (B, T, N, H, W); diff_*: (B, T, 1, H, W) or None.
    """

    alpha_os8: torch.Tensor
    alpha_os4: torch.Tensor
    alpha_os1: torch.Tensor
    refined: torch.Tensor
    detail_mask: torch.Tensor
    diff_forward: torch.Tensor | None = None
    diff_backward: torch.Tensor | None = None
