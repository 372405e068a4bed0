"""Atrous spatial pyramid pooling on the OS32 encoder output (MAGGIE_SPEC §6).

Five branches (1x1, three dilated 3x3, global pooling), concatenated and projected back to 512
channels. No spectral norm, no conv biases. Attribute names are the checkpoint keys under
``aspp.``. Called by :class:`.model.MaggieNetwork`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from actormatte.matting.spectral_norm import PointwiseConv2d


class ASPP(nn.Module):
    """ASPP with branches ``aspp1``..``aspp5`` (mid channels 256) and projection ``conv2``."""

    def __init__(self, in_channels: int = 512, out_channels: int = 512, mid: int = 256) -> None:
        super().__init__()
        self.aspp1 = PointwiseConv2d(in_channels, mid, bias=False)
        self.aspp2 = nn.Conv2d(in_channels, mid, 3, padding=2, dilation=2, bias=False)
        self.aspp3 = nn.Conv2d(in_channels, mid, 3, padding=4, dilation=4, bias=False)
        self.aspp4 = nn.Conv2d(in_channels, mid, 3, padding=8, dilation=8, bias=False)
        self.aspp5 = PointwiseConv2d(in_channels, mid, bias=False)
        self.aspp1_bn = nn.BatchNorm2d(mid)
        self.aspp2_bn = nn.BatchNorm2d(mid)
        self.aspp3_bn = nn.BatchNorm2d(mid)
        self.aspp4_bn = nn.BatchNorm2d(mid)
        self.aspp5_bn = nn.BatchNorm2d(mid)
        self.conv2 = PointwiseConv2d(mid * 5, out_channels, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ASPP.

        Shape:
            x: (BT, 512, h32, w32).
            returns: (BT, 512, h32, w32).
        """
        branches = [
            F.relu(self.aspp1_bn(self.aspp1(x))),
            F.relu(self.aspp2_bn(self.aspp2(x))),
            F.relu(self.aspp3_bn(self.aspp3(x))),
            F.relu(self.aspp4_bn(self.aspp4(x))),
        ]
        pooled = F.relu(self.aspp5_bn(self.aspp5(F.adaptive_avg_pool2d(x, 1))))  # (BT, mid, 1, 1)
        branches.append(F.interpolate(pooled, size=x.shape[-2:], mode="nearest"))
        return F.relu(self.bn2(self.conv2(torch.cat(branches, dim=1))))
