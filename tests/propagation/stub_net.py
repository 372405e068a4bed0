"""A tiny stand-in for XMemNet with the same stage interface (for long-shot/memory tests).

Real XMem weights make every frame cost ~0.3 s whatever the frame size; these tests exercise
the processor and memory manager over hundreds of frames, which only needs the right shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from actormatte.propagation.network import KeyFeatures, XMemDims, soft_aggregate


class StubNet(torch.nn.Module):
    """Keys/values from pooled pixels through fixed random projections; CK=8, CV=16, CH=4."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.dims = XMemDims(key_dim=8, value_dim=16, hidden_dim=4)
        self.key_w = torch.randn(8, 3, generator=gen)
        self.val_w = torch.randn(16, 5, generator=gen)
        self.eval()

    def encode_key(self, image: torch.Tensor, need_shrinkage: bool = True,
                   need_selection: bool = True) -> KeyFeatures:
        f16 = F.avg_pool2d(image, 16)  # (1, 3, h, w)
        key = torch.einsum("kc,bchw->bkhw", self.key_w, f16)
        shrinkage = key[:, :1] ** 2 + 1 if need_shrinkage else None
        selection = torch.sigmoid(key) if need_selection else None
        return KeyFeatures(key, shrinkage, selection, f16, F.avg_pool2d(image, 8),
                           F.avg_pool2d(image, 4))

    def encode_value(self, image: torch.Tensor, f16: torch.Tensor, hidden: torch.Tensor,
                     masks: torch.Tensor, deep_update: bool) -> tuple[torch.Tensor, torch.Tensor]:
        small = F.avg_pool2d(masks, 16)  # (1, N, h, w)
        parts = torch.cat([f16.expand(small.shape[1], -1, -1, -1), small[0, :, None]], 1)
        parts = torch.cat([parts, 1 - small[0, :, None]], 1)  # (N, 5, h, w)
        value = torch.einsum("vc,nchw->nvhw", self.val_w, parts).unsqueeze(0)
        return value, hidden + 0.1 if deep_update else hidden

    def segment(self, features: KeyFeatures, readout: torch.Tensor, hidden: torch.Tensor,
                h_out: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        logits = readout[:, :, 0] + hidden[:, :, 0]  # (1, N, h, w)
        logits = F.interpolate(logits, scale_factor=16, mode="bilinear", align_corners=False)
        _, prob = soft_aggregate(torch.sigmoid(logits), dim=1)
        return (hidden * 0.9 if h_out else None), prob
