"""MaGGIe encoder ``res_shortcut_embed_29``: mask-identity embedding, ResNet-29 and five shortcuts.

The image (3 channels) and an identity embedding of the instance masks (3 channels) enter a
ResNet-D style backbone (MAGGIE_SPEC §5) whose stages feed five shortcut branches at OS1..OS16
for the decoder. Every conv is spectrally normalised (:mod:`.spectral_norm`). Module names
reproduce the checkpoint keys under ``encoder.``. Called by :class:`.model.MaggieNetwork`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from actormatte.matting.spectral_norm import SpectralNormConv2d


@dataclass(frozen=True)
class EncoderFeatures:
    """Encoder outputs for a batch of B*T frames.

    Attributes:
        out: bottleneck features (BT, 512, H/32, W/32).
        fea1: OS1 shortcut (BT, 32, H, W).
        fea2: OS2 shortcut (BT, 32, H/2, W/2).
        fea3: OS4 shortcut (BT, 64, H/4, W/4).
        fea4: OS8 shortcut (BT, 128, H/8, W/8).
        fea5: OS16 shortcut (BT, 256, H/16, W/16).
    """

    out: torch.Tensor
    fea1: torch.Tensor
    fea2: torch.Tensor
    fea3: torch.Tensor
    fea4: torch.Tensor
    fea5: torch.Tensor


def _sn3x3(in_channels: int, out_channels: int, stride: int = 1) -> SpectralNormConv2d:
    return SpectralNormConv2d(in_channels, out_channels, 3, stride=stride, padding=1)


class EncoderBlock(nn.Module):
    """BasicBlock: conv3x3(stride)-BN-ReLU-conv3x3-BN + (AvgPool-conv1x1-BN shortcut), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _sn3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _sn3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(2, stride=2),
                SpectralNormConv2d(in_channels, out_channels, 1),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` (B,C,H,W)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu_(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu_(out.add_(identity))


def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [EncoderBlock(in_channels, out_channels, stride)]
    layers += [EncoderBlock(out_channels, out_channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class InplaceBatchNorm2d(nn.BatchNorm2d):
    """Eval-mode BatchNorm that overwrites its input.

    The OS1 shortcut maps are 377 MB for five 576x1024 frames. Use only where the input is not
    needed elsewhere; falls back to the ordinary op when training or recording gradients.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (B,C,H,W) in place with the running statistics."""
        if self.training or torch.is_grad_enabled() or self.running_var is None:
            return super().forward(x)
        assert self.running_mean is not None
        scale = self.weight / torch.sqrt(self.running_var + self.eps)  # (C,)
        shift = self.bias - self.running_mean * scale
        return x.mul_(scale.view(1, -1, 1, 1)).add_(shift.view(1, -1, 1, 1))


#: Output elements per chunk of frames in a shortcut branch (one 576x1024 frame at OS1 is 19M).
SHORTCUT_CHUNK_ELEMENTS = 1 << 24


class ShortcutBranch(nn.Sequential):
    """conv3x3-ReLU-BN-conv3x3-ReLU-BN, run over chunks of frames to bound memory at OS1.

    ReLU comes before BN, as in the checkpoint (keys .0 conv, .2 BN, .3 conv, .5 BN).

    Each spectral-norm weight is computed once per call and reused for every chunk, so the
    stateful semantics (one power iteration per forward) are kept.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            _sn3x3(in_channels, out_channels), nn.ReLU(inplace=True),
            InplaceBatchNorm2d(out_channels),
            _sn3x3(out_channels, out_channels), nn.ReLU(inplace=True),
            InplaceBatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: x (BT, Cin, H, W) -> (BT, Cout, H, W)."""
        conv_a, relu_a, bn_a, conv_b, relu_b, bn_b = self
        assert isinstance(conv_a, SpectralNormConv2d) and isinstance(conv_b, SpectralNormConv2d)
        weight_a, weight_b = conv_a.weight(), conv_b.weight()
        out_channels = weight_b.shape[0]
        per_frame = out_channels * x.shape[-2] * x.shape[-1]
        chunk = max(1, SHORTCUT_CHUNK_ELEMENTS // per_frame)
        if chunk >= x.shape[0]:
            y = bn_a(relu_a(conv_a(x, weight_a)))
            return bn_b(relu_b(conv_b(y, weight_b)))
        out = x.new_empty(x.shape[0], out_channels, *x.shape[-2:])
        for start in range(0, x.shape[0], chunk):
            y = bn_a(relu_a(conv_a(x[start:start + chunk], weight_a)))
            out[start:start + chunk] = bn_b(relu_b(conv_b(y, weight_b)))
            del y
        return out


class MaggieEncoder(nn.Module):
    """The encoder; attribute names are the checkpoint's (``conv1``.. ``mask_embed_layer``)."""

    def __init__(self, num_mask: int = 10, num_embed: int = 3) -> None:
        super().__init__()
        self.num_mask = num_mask
        self.conv1 = _sn3x3(3 + num_embed, 32, stride=2)
        self.conv2 = _sn3x3(32, 32)
        self.conv3 = _sn3x3(32, 64, stride=2)
        self.bn1 = nn.BatchNorm2d(32)
        self.bn2 = nn.BatchNorm2d(32)
        self.bn3 = nn.BatchNorm2d(64)
        self.layer1 = _stage(64, 64, 3, 1)
        self.layer2 = _stage(64, 128, 4, 2)
        self.layer3 = _stage(128, 256, 4, 2)
        self.layer_bottleneck = _stage(256, 512, 2, 2)
        self.shortcut = nn.ModuleList([
            ShortcutBranch(3 + num_embed, 32), ShortcutBranch(32, 32), ShortcutBranch(64, 64),
            ShortcutBranch(128, 128), ShortcutBranch(256, 256),
        ])
        self.mask_embed_layer = nn.Embedding(num_mask + 1, num_embed)

    def embed_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """Identity embedding of the instance masks (MAGGIE_SPEC §5.1).

        Slot k (0-based) has id k+1; the id of a pixel is ``trunc(mask * (k+1))`` (so masks must
        be binary), and the embedding averages the rows of covering instances (divisor
        ``count + 1e-6``). Empty slots (k >= N) contribute nothing, so only N slots are visited.

        Shape:
            masks: (BT, N, H, W) with N <= num_mask, values in {0, 1}.
            returns: (BT, num_embed, H, W).
        """
        total: torch.Tensor | None = None
        count: torch.Tensor | None = None
        for k in range(masks.shape[1]):
            ids = (masks[:, k] * (k + 1)).long()  # (BT, H, W), truncated like the official code
            valid = ids > 0
            emb = self.mask_embed_layer(ids) * valid.unsqueeze(-1)  # (BT, H, W, E)
            total = emb if total is None else total.add_(emb)
            count = valid.long() if count is None else count.add_(valid)
        assert total is not None and count is not None
        total = total / (count + 1e-6).unsqueeze(-1)
        return total.permute(0, 3, 1, 2)  # (BT, H, W, E) -> (BT, E, H, W)

    def forward(self, image: torch.Tensor, masks: torch.Tensor) -> EncoderFeatures:
        """Encode normalised frames with their instance masks.

        Shape:
            image: (BT, 3, H, W), normalised RGB; H and W multiples of 32.
            masks: (BT, N, H, W), binary.
        """
        inp = torch.cat([image, self.embed_masks(masks)], dim=1)  # (BT, 3+E, H, W)
        # oneDNN convolves channels-last maps without layout reorders (~15% faster here).
        inp = inp.contiguous(memory_format=torch.channels_last)
        fea1 = self.shortcut[0](inp)
        x = F.relu_(self.bn1(self.conv1(inp)))
        del inp
        x1 = F.relu_(self.bn2(self.conv2(x)))
        fea2 = self.shortcut[1](x1)
        x = F.relu_(self.bn3(self.conv3(x1)))
        del x1
        x2 = self.layer1(x)
        fea3 = self.shortcut[2](x2)
        x3 = self.layer2(x2)
        del x2
        fea4 = self.shortcut[3](x3)
        x4 = self.layer3(x3)
        del x3
        fea5 = self.shortcut[4](x4)
        out = self.layer_bottleneck(x4)
        return EncoderFeatures(out=out, fea1=fea1, fea2=fea2, fea3=fea3, fea4=fea4, fea5=fea5)
