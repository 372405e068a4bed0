"""Building blocks of the XMem network: ResNet blocks, group convolutions, CBAM, fusion, GRU.

Used by :mod:`actormatte.propagation.network` only. Submodule attribute names are fixed by the
official checkpoint (``XMem.pth``): they produce its state-dict keys, so odd names such as
``downsample`` (a 3x3 conv in group blocks), ``ChannelGate``/``SpatialGate`` (CBAM) and the
``mlp.1``/``mlp.3`` Linear indices are kept on purpose.

"Group tensors" carry one feature map per object: ``(B, N, C, H, W)``. Group convolutions fold
the object axis into the batch, so objects never interact inside a convolution.

Speed (CPU inference), without changing the maths beyond float summation order:

* eval-mode batch norm is folded into the preceding convolution on every call
  (:func:`conv_bn`); the modules and ``state_dict()`` keep the checkpoint's tensors untouched;
* an image feature concatenated to every object's features goes through its share of the
  convolutions once per frame, not once per object (:meth:`GroupResBlock.forward_concat`):
  convolutions are linear and ReLU acts per channel;
* activations and residual sums are computed in place where the input is not needed again;
* convolutions get channels-last (NHWC) inputs (:func:`nhwc`), which oneDNN convolves without
  reordering; NHWC maps stay NHWC through ReLU, sums, pooling and resampling, and group
  tensors are NHWC per object (``(B, N, C, H, W)`` views of ``(B*N, C, H, W)`` NHWC maps);
* wide 3x3 stride-1 convolutions run as Winograd F(2x2, 3x3) on CPU float32
  (:func:`actormatte.propagation.winograd.conv3x3_same`), equal up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from actormatte.propagation.winograd import conv3x3_same


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last memory order (no copy when it already is); values unchanged.

    Shape:
        x: (B, C, H, W) -> (B, C, H, W)
    """
    return x.contiguous(memory_format=torch.channels_last)


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
        out = conv3x3_same(self, nhwc(g.flatten(0, 1)))  # (B*N, C_out, H', W')
        return out.view(batch, num_objects, *out.shape[1:])  # (B, N, C_out, H', W')


def conv_bn(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """``bn(conv(x))``; in eval mode as one convolution with BN folded into its weights.

    Eval BN is the affine map ``y * s + (beta - mean * s)`` with ``s = gamma / sqrt(var + eps)``
    per output channel, so it folds into the convolution's weight and bias. The folded tensors
    are made on each call (a few MB of arithmetic, next to GFLOPs of convolution) and not
    cached, so nothing can go stale after ``load_state_dict`` and the parameters stay the
    checkpoint's. In training mode the modules run unchanged (batch statistics).

    Shape:
        x: (B, C_in, H, W) -> (B, C_out, H', W')
    """
    if bn.training or bn.running_mean is None or bn.running_var is None:
        return bn(conv(x))
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # (C_out,)
    shift = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    weight = conv.weight * scale.view(-1, 1, 1, 1)  # (C_out, C_in, k, k)
    return F.conv2d(x, weight, shift, conv.stride, conv.padding, conv.dilation, conv.groups)


def add_into(out: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``out + other``, written into ``out`` (a fresh temporary) when the dtypes allow it.

    Under autocast the two can differ (fp16 conv output, fp32 input); then a new tensor is
    returned, as the out-of-place sum would, so the result dtype never changes.
    """
    same_shape = out.shape == torch.broadcast_shapes(out.shape, other.shape)
    if same_shape and out.dtype == torch.promote_types(out.dtype, other.dtype):
        return out.add_(other)
    return out + other


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
        out = F.relu_(conv_bn(x, self.conv1, self.bn1))
        out = F.relu_(conv_bn(out, self.conv2, self.bn2))
        out = conv_bn(out, self.conv3, self.bn3)
        shortcut = x if self.downsample is None else conv_bn(x, *self.downsample)
        return F.relu_(add_into(out, shortcut))


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
        out = F.relu_(conv_bn(x, self.conv1, self.bn1))
        out = conv_bn(out, self.conv2, self.bn2)
        shortcut = x if self.downsample is None else conv_bn(x, *self.downsample)
        return F.relu_(add_into(out, shortcut))


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
        shortcut = g if self.downsample is None else self.downsample(g)
        return add_into(self._residual(g, in_place=False), shortcut)

    def forward_concat(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``forward(cat([x per object, g], 2))``, convolving the shared ``x`` once, not N times.

        A convolution of a concatenation is the sum of convolutions of the parts (weights split
        by input channel) and ReLU acts per channel, so ``x``'s share of ``conv1`` and of the
        shortcut is computed once and broadcast to the objects.

        Shape:
            x: (B, C_x, H, W); g: (B, N, C_g, H, W) with C_x + C_g = C_in -> (B, N, C_out, H, W)
        """
        assert self.downsample is not None, "a concatenation widens the input"
        x_part, g_part = slice(0, x.shape[1]), slice(x.shape[1], None)
        hidden = _split_conv(self.conv1, F.relu(x), F.relu(g), x_part, g_part)
        shortcut = _split_conv(self.downsample, x, g, x_part, g_part)
        return add_into(self.conv2(F.relu_(hidden)), shortcut)

    def forward_owned(self, g: torch.Tensor) -> torch.Tensor:
        """``forward(g)`` for a ``g`` nobody needs afterwards (its ReLU is taken in place).

        Shape:
            g: (B, N, C_in, H, W) -> (B, N, C_out, H, W)
        """
        if self.downsample is None:
            return self.forward(g)
        shortcut = self.downsample(g)
        return add_into(self._residual(g, in_place=True), shortcut)

    def _residual(self, g: torch.Tensor, in_place: bool) -> torch.Tensor:
        """``conv2(relu(conv1(relu(g))))``, each temporary freed as soon as it is consumed.

        Shape:
            g: (B, N, C_in, H, W) -> (B, N, C_out, H, W)
        """
        return self.conv2(F.relu_(self.conv1(F.relu_(g) if in_place else F.relu(g))))


def _conv_part(conv: nn.Conv2d, x: torch.Tensor, channels: slice, with_bias: bool
               ) -> torch.Tensor:
    """``conv`` restricted to some input channels (the bias optionally), on a plain map.

    Shape:
        x: (B', C_part, H, W) -> (B', C_out, H, W)
    """
    return conv3x3_same(conv, nhwc(x), channels, with_bias)


def _split_conv(conv: nn.Conv2d, x: torch.Tensor, g: torch.Tensor, x_channels: slice,
                g_channels: slice) -> torch.Tensor:
    """A conv as a once-per-frame part on shared ``x`` plus a per-object part on ``g``.

    The ``x_channels``/``g_channels`` input channels of the weight apply to ``x``/``g``; the
    bias goes with ``x``: ``conv(cat([x per object, g], 2))`` for the two halves of the input.

    Shape:
        x: (B, C_x, H, W); g: (B, N, C_g, H, W) -> (B, N, C_out, H, W)
    """
    batch, num_objects = g.shape[:2]
    shared = _conv_part(conv, x, x_channels, with_bias=True)  # (B, C_out, H, W)
    own = _conv_part(conv, nhwc(g.flatten(0, 1)), g_channels, with_bias=False)  # (B*N,C_out,H,W)
    own = own.view(batch, num_objects, *own.shape[1:])  # (B, N, C_out, H, W)
    return own.add_(shared.unsqueeze(1))


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
        g = self.block1.forward_concat(x, g)  # = block1(cat([x per object, g], 2))
        att = self.attention(g.flatten(0, 1))  # (B*N, C, H, W)
        att = att.view(batch, num_objects, *att.shape[1:])  # (B, N, C, H, W)
        return self.block2(add_into(g, att))


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
                logits: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Update ``hidden`` from g16, g8 and ``cat([g4, logits])`` (the official stride-4 input).

        Area pooling acts per channel, so g4 and the logits are pooled before they are joined
        (the same values, without a full-resolution concatenation).

        Shape:
            g16 (B,N,512,h,w), g8 (B,N,256,2h,2w), g4 (B,N,256,4h,4w), logits (B,N,1,4h,4w),
            hidden (B,N,CH,h,w) -> (B,N,CH,h,w)
        """
        g4 = torch.cat([group_interpolate(g4, 0.25, "area"),
                        group_interpolate(logits, 0.25, "area")], 2)  # (B, N, 257, h, w)
        u = (self.g16_conv(g16) + self.g8_conv(group_interpolate(g8, 0.5, "area"))
             + self.g4_conv(g4))
        return gru_update(self.transform(torch.cat([u, hidden], 2)), hidden)


class UpsampleBlock(nn.Module):
    """Decoder up-block: x2 bilinear upsample of group features plus a projected skip feature."""

    def __init__(self, skip_dim: int, up_dim: int, out_dim: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_dim, up_dim, 3, padding=1)
        self.out_conv = GroupResBlock(up_dim, out_dim)

    def forward(self, skip: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Shape: skip (B, C_s, 2h, 2w), g (B, N, C_up, h, w) -> (B, N, C_out, 2h, 2w)."""
        up = group_interpolate(g, 2.0, "bilinear")  # (B, N, C_up, 2h, 2w)
        skip = conv3x3_same(self.skip_conv, nhwc(skip))  # (B, C_up, 2h, 2w)
        up = add_into(up, skip.unsqueeze(1))  # skip + up, per object
        return self.out_conv.forward_owned(up)
