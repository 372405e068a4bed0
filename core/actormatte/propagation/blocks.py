"""Building blocks of the XMem network: ResNet blocks, group convolutions, CBAM, fusion, GRU.

Used by :mod:`actormatte.propagation.network` only. Submodule attribute names are fixed by the
official checkpoint (``XMem.pth``): they produce its state-dict keys, so odd names such as
``downsample`` (a 3x3 conv in group blocks), ``ChannelGate``/``SpatialGate`` (CBAM) and the
``mlp.1``/``mlp.3`` Linear indices are kept on purpose.

"Group tensors" carry one feature map per object: ``(B, N, C, H, W)``. Group convolutions fold
the object axis into the batch, so objects never interact inside a convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_interpolate(g: torch.Tensor, scale: float, mode: str) -> torch.Tensor:
    """Resample every object map of a group tensor by ``scale``.

    Args:
        g: group tensor.
        scale: scale factor (2 or 4 up, 0.5 or 0.25 down).
        mode: ``"bilinear"`` (align_corners=False) or ``"area"``.

    Shape:
        g: (B, N, C, H, W) -> (B, N, C, H*scale, W*scale)
    """
    batch, num_objects = g.shape[:2]
    flat = g.flatten(0, 1)  # (B*N, C, H, W)
    align = False if mode == "bilinear" else None
    out = F.interpolate(flat, scale_factor=scale, mode=mode, align_corners=align)
    return out.view(batch, num_objects, *out.shape[1:])  # (B, N, C, H', W')


class GConv2d(nn.Conv2d):
    """A 2-D convolution applied to every object of a group tensor independently.

    Shape:
        input: (B, N, C_in, H, W) -> (B, N, C_out, H', W')
    """

    def forward(self, g: torch.Tensor) -> torch.Tensor:  # noqa: D102
        batch, num_objects = g.shape[:2]
        out = super().forward(g.flatten(0, 1))  # (B*N, C_out, H', W')
        return out.view(batch, num_objects, *out.shape[1:])  # (B, N, C_out, H', W')


class Bottleneck(nn.Module):
    """ResNet-50 bottleneck (stride on the 3x3, "v1.5"); output channels ``4 * planes``."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * 4
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: (B, C_in, H, W) -> (B, 4*planes, H/stride, W/stride)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class BasicBlock(nn.Module):
    """ResNet-18 basic block: two 3x3 convs with BN and a projection shortcut when needed."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: (B, C_in, H, W) -> (B, planes, H/stride, W/stride)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


def make_stage(block: type[Bottleneck] | type[BasicBlock], in_channels: int, planes: int,
               num_blocks: int, stride: int) -> nn.Sequential:
    """A ResNet stage: the first block strides and projects, the others keep the shape."""
    expansion = 4 if block is Bottleneck else 1
    layers: list[nn.Module] = [block(in_channels, planes, stride)]
    layers += [block(planes * expansion, planes, 1) for _ in range(num_blocks - 1)]
    return nn.Sequential(*layers)


class GroupResBlock(nn.Module):
    """Pre-activation residual block on group tensors; the shortcut is a 3x3 conv if widths differ.

    Shape:
        input: (B, N, C_in, H, W) -> (B, N, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        # Registered first: the checkpoint lists `downsample` before `conv1`.
        self.downsample: GConv2d | None = None
        if in_channels != out_channels:
            self.downsample = GConv2d(in_channels, out_channels, 3, padding=1)
        self.conv1 = GConv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = GConv2d(out_channels, out_channels, 3, padding=1)

    def forward(self, g: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.conv2(F.relu(self.conv1(F.relu(g))))
        shortcut = g if self.downsample is None else self.downsample(g)
        return out + shortcut


class ChannelGate(nn.Module):
    """CBAM channel attention: one shared MLP on the global average and max pools."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        # Indices 1 and 3 are the Linear layers in the checkpoint (0 Flatten, 2 ReLU).
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, channels // reduction),
                                 nn.ReLU(), nn.Linear(channels // reduction, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: (B, C, H, W) -> (B, C, H, W)."""
        size = (x.shape[2], x.shape[3])
        att = self.mlp(F.avg_pool2d(x, size, stride=size))
        att = att + self.mlp(F.max_pool2d(x, size, stride=size))  # (B, C)
        return x * torch.sigmoid(att)[:, :, None, None].expand_as(x)


class _SpatialConv(nn.Module):
    """Holds the 7x7 conv under the checkpoint name ``spatial.conv``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)


class SpatialGate(nn.Module):
    """CBAM spatial attention from the [max, mean] channel pools."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = _SpatialConv()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: (B, C, H, W) -> (B, C, H, W)."""
        pooled = torch.cat([torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)], 1)
        return x * torch.sigmoid(self.spatial.conv(pooled))


class CBAM(nn.Module):
    """Convolutional block attention (channel gate, then spatial gate); returns the gated map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ChannelGate = ChannelGate(channels)  # noqa: N815 (checkpoint name)
        self.SpatialGate = SpatialGate()  # noqa: N815 (checkpoint name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: (B, C, H, W) -> (B, C, H, W)."""
        return self.SpatialGate(self.ChannelGate(x))


class FeatureFusionBlock(nn.Module):
    """Fuse an image feature map into every object's group features (ResBlock, CBAM, ResBlock).

    Shape:
        x: (B, C_x, H, W); g: (B, N, C_g, H, W) -> (B, N, C_out, H, W)
    """

    def __init__(self, x_channels: int, g_channels: int, mid_channels: int,
                 out_channels: int) -> None:
        super().__init__()
        self.block1 = GroupResBlock(x_channels + g_channels, mid_channels)
        self.attention = CBAM(mid_channels)
        self.block2 = GroupResBlock(mid_channels, out_channels)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:  # noqa: D102
        batch, num_objects = g.shape[:2]
        x_per_object = x.unsqueeze(1).expand(-1, num_objects, -1, -1, -1)  # (B, N, C_x, H, W)
        g = self.block1(torch.cat([x_per_object, g], 2))
        att = self.attention(g.flatten(0, 1))  # (B*N, C, H, W)
        att = att.view(batch, num_objects, *att.shape[1:])  # (B, N, C, H, W)
        return self.block2(g + att)


def gru_update(gates: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """XMem's GRU-like update: ``f*h*(1-z) + z*tanh(n)`` with gates ``[f | z | n]``.

    There is no reset gate and the candidate ignores ``h``; this is what the weights learned.

    Shape:
        gates: (B, N, 3*CH, H, W); hidden: (B, N, CH, H, W) -> (B, N, CH, H, W)
    """
    ch = hidden.shape[2]
    forget = torch.sigmoid(gates[:, :, :ch])
    update = torch.sigmoid(gates[:, :, ch:ch * 2])
    candidate = torch.tanh(gates[:, :, ch * 2:])
    return forget * hidden * (1 - update) + update * candidate


class HiddenReinforcer(nn.Module):
    """Deep update of the sensory memory from a new memory value (value encoder side)."""

    def __init__(self, value_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.transform = GConv2d(value_dim + hidden_dim, hidden_dim * 3, 3, padding=1)

    def forward(self, g: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Shape: g (B, N, CV, h, w), hidden (B, N, CH, h, w) -> (B, N, CH, h, w)."""
        return gru_update(self.transform(torch.cat([g, hidden], 2)), hidden)


class HiddenUpdater(nn.Module):
    """Sensory-memory update from the decoder's multi-scale group features."""

    def __init__(self, g_dims: tuple[int, int, int], mid_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.g16_conv = GConv2d(g_dims[0], mid_dim, 1)
        self.g8_conv = GConv2d(g_dims[1], mid_dim, 1)
        self.g4_conv = GConv2d(g_dims[2], mid_dim, 1)
        self.transform = GConv2d(mid_dim + hidden_dim, hidden_dim * 3, 3, padding=1)

    def forward(self, g16: torch.Tensor, g8: torch.Tensor, g4: torch.Tensor,
                hidden: torch.Tensor) -> torch.Tensor:
        """Shape: g16 (B,N,512,h,w), g8 (B,N,256,2h,2w), g4 (B,N,257,4h,4w) -> (B,N,CH,h,w)."""
        u = (self.g16_conv(g16) + self.g8_conv(group_interpolate(g8, 0.5, "area"))
             + self.g4_conv(group_interpolate(g4, 0.25, "area")))
        return gru_update(self.transform(torch.cat([u, hidden], 2)), hidden)


class UpsampleBlock(nn.Module):
    """Decoder up-block: x2 bilinear upsample of group features plus a projected skip feature."""

    def __init__(self, skip_dim: int, up_dim: int, out_dim: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_dim, up_dim, 3, padding=1)
        self.out_conv = GroupResBlock(up_dim, out_dim)

    def forward(self, skip: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Shape: skip (B, C_s, 2h, 2w), g (B, N, C_up, h, w) -> (B, N, C_out, 2h, 2w)."""
        skip = self.skip_conv(skip)
        up = group_interpolate(g, 2.0, "bilinear")
        return self.out_conv(skip.unsqueeze(1).expand(-1, g.shape[1], -1, -1, -1) + up)
