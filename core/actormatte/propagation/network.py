"""The XMem network as a pure module with named stages (encode_key, encode_value, segment).

Built by :func:`actormatte.propagation.loading.load_xmem` and driven by
:class:`actormatte.propagation.processor.XMemProcessor`, which owns memory, padding and objects.
Attribute names reproduce the official checkpoint's state-dict keys and order (key_encoder,
value_encoder, key_proj, decoder); ``key_encoder.res2`` is torchvision's ``layer1`` under the
name XMem gave it. Batch size is 1 in practice but the stages are written for any B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from actormatte.propagation.blocks import (
    BasicBlock,
    Bottleneck,
    FeatureFusionBlock,
    HiddenReinforcer,
    HiddenUpdater,
    UpsampleBlock,
    conv_bn,
    make_stage,
    nhwc,
)


@dataclass(frozen=True)
class XMemDims:
    """Architecture constants fixed by a checkpoint (read from tensor shapes).

    Attributes:
        key_dim: key channels CK (64 in XMem.pth).
        value_dim: value channels CV (512).
        hidden_dim: sensory-memory channels CH (64); 0 = the "no sensory" model.
    """

    key_dim: int = 64
    value_dim: int = 512
    hidden_dim: int = 64


@dataclass(frozen=True)
class KeyFeatures:
    """Query/memory key of one frame and its multi-scale image features.

    Attributes:
        key: (B, CK, h, w) key at stride 16.
        shrinkage: (B, 1, h, w) shrinkage (>= 1), or None when not requested.
        selection: (B, CK, h, w) selection in (0, 1), or None when not requested.
        f16: (B, 1024, h, w); f8: (B, 512, 2h, 2w); f4: (B, 256, 4h, 4w) image features.
    """

    key: torch.Tensor
    shrinkage: torch.Tensor | None
    selection: torch.Tensor | None
    f16: torch.Tensor
    f8: torch.Tensor
    f4: torch.Tensor


class KeyEncoder(nn.Module):
    """ResNet-50 stem, layer1 (named ``res2``), layer2 and layer3."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.res2 = make_stage(Bottleneck, 64, 64, 3, 1)
        self.layer2 = make_stage(Bottleneck, 256, 128, 4, 2)
        self.layer3 = make_stage(Bottleneck, 512, 256, 6, 2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shape: (B, 3, H, W) -> f16 (B,1024,H/16,W/16), f8 (B,512,H/8,..), f4 (B,256,H/4,..)."""
        x = F.relu_(conv_bn(nhwc(image), self.conv1, self.bn1))  # NHWC from here on
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        f4 = self.res2(x)
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return f16, f8, f4


class KeyProjection(nn.Module):
    """Key, shrinkage (d^2 + 1) and selection (sigmoid) heads on f16."""

    def __init__(self, in_dim: int, key_dim: int) -> None:
        super().__init__()
        self.key_proj = nn.Conv2d(in_dim, key_dim, 3, padding=1)
        self.d_proj = nn.Conv2d(in_dim, 1, 3, padding=1)
        self.e_proj = nn.Conv2d(in_dim, key_dim, 3, padding=1)

    def forward(self, f16: torch.Tensor, need_shrinkage: bool, need_selection: bool
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Shape: (B,1024,h,w) -> key (B,CK,h,w), shrinkage (B,1,h,w), selection (B,CK,h,w)."""
        shrinkage = self.d_proj(f16) ** 2 + 1 if need_shrinkage else None
        selection = torch.sigmoid(self.e_proj(f16)) if need_selection else None
        return self.key_proj(f16), shrinkage, selection


class ValueEncoder(nn.Module):
    """ResNet-18 (5-channel input) to layer3, fusion with f16, and the deep hidden update."""

    def __init__(self, value_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(5, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = make_stage(BasicBlock, 64, 64, 2, 1)
        self.layer2 = make_stage(BasicBlock, 64, 128, 2, 2)
        self.layer3 = make_stage(BasicBlock, 128, 256, 2, 2)
        self.fuser = FeatureFusionBlock(1024, 256, value_dim, value_dim)
        self.hidden_reinforce: HiddenReinforcer | None = None
        if hidden_dim > 0:
            self.hidden_reinforce = HiddenReinforcer(value_dim, hidden_dim)

    def forward(self, image: torch.Tensor, f16: torch.Tensor, hidden: torch.Tensor,
                masks: torch.Tensor, others: torch.Tensor, deep_update: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode per-object masks into memory values.

        Shape:
            image (B,3,H,W), f16 (B,1024,h,w), hidden (B,N,CH,h,w), masks/others (B,N,H,W)
            -> value (B,N,CV,h,w), hidden (B,N,CH,h,w)
        """
        batch, num_objects = masks.shape[:2]
        g = torch.stack([masks, others], 2)  # (B, N, 2, H, W)
        image_per_object = image.unsqueeze(1).expand(-1, num_objects, -1, -1, -1)
        g = nhwc(torch.cat([image_per_object, g], 2).flatten(0, 1))  # (B*N, 5, H, W)
        g = conv_bn(g, self.conv1, self.bn1)
        g = F.relu_(F.max_pool2d(g, 3, stride=2, padding=1))  # official order: pool, then ReLU
        g = self.layer3(self.layer2(self.layer1(g)))  # (B*N, 256, h, w)
        g = g.view(batch, num_objects, *g.shape[1:])  # (B, N, 256, h, w)
        g = self.fuser(f16, g)
        if deep_update and self.hidden_reinforce is not None:
            hidden = self.hidden_reinforce(g, hidden)
        return g, hidden


class Decoder(nn.Module):
    """Readout + sensory memory -> per-object logits; optionally the new sensory memory."""

    def __init__(self, value_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fuser = FeatureFusionBlock(1024, value_dim + hidden_dim, 512, 512)
        self.hidden_update: HiddenUpdater | None = None
        if hidden_dim > 0:
            self.hidden_update = HiddenUpdater((512, 256, 256 + 1), 256, hidden_dim)
        self.up_16_8 = UpsampleBlock(512, 512, 256)
        self.up_8_4 = UpsampleBlock(256, 256, 256)
        self.pred = nn.Conv2d(256, 1, 3, padding=1)

    def forward(self, f16: torch.Tensor, f8: torch.Tensor, f4: torch.Tensor,
                hidden: torch.Tensor, readout: torch.Tensor, h_out: bool
                ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Decode.

        Shape:
            f16 (B,1024,h,w), f8, f4, hidden (B,N,CH,h,w), readout (B,N,CV,h,w)
            -> new hidden (B,N,CH,h,w) or None, logits (B,N,16h,16w)
        """
        batch, num_objects = readout.shape[:2]
        if self.hidden_update is not None:
            g16 = self.fuser(f16, torch.cat([readout, hidden], 2))
        else:
            g16 = self.fuser(f16, readout)
        g8 = self.up_16_8(f8, g16)
        g4 = self.up_8_4(f4, g8)
        logits = self.pred(nhwc(F.relu(g4.flatten(0, 1))))  # (B*N, 1, 4h, 4w)
        new_hidden = None
        if h_out and self.hidden_update is not None:
            logits_g = logits.view(batch, num_objects, 1, *logits.shape[-2:])  # (B,N,1,4h,4w)
            new_hidden = self.hidden_update(g16, g8, g4, logits_g, hidden)
        logits = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
        return new_hidden, logits.view(batch, num_objects, *logits.shape[-2:])  # (B,N,H,W)


def soft_aggregate(prob: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn independent per-object probabilities into a distribution with a background channel.

    Background is the product of ``1 - p`` over objects (in order); the result is clamped to
    [1e-7, 1-1e-7], turned into logits and soft-maxed over ``dim``.

    Shape:
        prob: (..., N, ...) with N on ``dim`` -> logits, probabilities (..., N+1, ...)
    """
    new_prob = torch.cat([torch.prod(1 - prob, dim=dim, keepdim=True), prob], dim)
    new_prob = new_prob.clamp(1e-7, 1 - 1e-7)
    logits = torch.log(new_prob / (1 - new_prob))
    return logits, F.softmax(logits, dim=dim)


class XMemNet(nn.Module):
    """The XMem network (key encoder, value encoder, key projection, decoder), stateless.

    Args:
        dims: channel sizes read from the checkpoint.
    """

    def __init__(self, dims: XMemDims = XMemDims()) -> None:
        super().__init__()
        self.dims = dims
        self.key_encoder = KeyEncoder()
        self.value_encoder = ValueEncoder(dims.value_dim, dims.hidden_dim)
        self.key_proj = KeyProjection(1024, dims.key_dim)
        self.decoder = Decoder(dims.value_dim, dims.hidden_dim)

    def encode_key(self, image: torch.Tensor, need_shrinkage: bool = True,
                   need_selection: bool = True) -> KeyFeatures:
        """Key, shrinkage, selection and image features of a padded frame.

        Shape:
            image: (B, 3, H, W), H and W multiples of 16.
        """
        f16, f8, f4 = self.key_encoder(image)
        key, shrinkage, selection = self.key_proj(f16, need_shrinkage, need_selection)
        return KeyFeatures(key, shrinkage, selection, f16, f8, f4)

    def encode_value(self, image: torch.Tensor, f16: torch.Tensor, hidden: torch.Tensor,
                     masks: torch.Tensor, deep_update: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory value of every object; ``others`` is the plain sum of the other objects.

        Shape:
            image (B,3,H,W), f16 (B,1024,h,w), hidden (B,N,CH,h,w), masks (B,N,H,W)
            -> value (B,N,CV,h,w), hidden (B,N,CH,h,w)
        """
        num_objects = masks.shape[1]
        if num_objects != 1:
            others = torch.cat([
                torch.sum(masks[:, [j for j in range(num_objects) if j != i]], dim=1, keepdim=True)
                for i in range(num_objects)], 1)  # (B, N, H, W)
        else:
            others = torch.zeros_like(masks)
        return self.value_encoder(image, f16, hidden, masks, others, deep_update)

    def segment(self, features: KeyFeatures, readout: torch.Tensor, hidden: torch.Tensor,
                h_out: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Decode a readout into soft-aggregated probabilities (background first).

        Shape:
            readout (B,N,CV,h,w), hidden (B,N,CH,h,w) -> new hidden or None, prob (B,N+1,H,W)
        """
        new_hidden, logits = self.decoder(features.f16, features.f8, features.f4, hidden,
                                          readout, h_out)
        _, prob = soft_aggregate(torch.sigmoid(logits), dim=1)
        return new_hidden, prob
