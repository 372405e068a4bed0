"""Uncertainty bands, the video bounding-box limit and the OS8/OS4/OS1 fusion of MaGGIe.

The coarse OS8 alpha decides where the sparse detail branch works: pixels strictly between
1/255 and 254/255, dilated with an elliptic structuring element (MAGGIE_SPEC §9.1). The video
model further limits them to a padded box around each instance (§9, with the official,
not-quite-Gaussian ``smooth`` of §9.2), and the final matte is a select between the OS8, OS4 and
OS1 predictions on dilated bands (§11). Pure functions on tensors; called by :mod:`.decoder`.

Dilations use OpenCV on CPU tensors (as the official code does) and an exact integer-count
convolution on other devices.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# Official compute_unknown(k) dilates with an ellipse of size k // 2; the sizes it uses:
UNKNOWN_ELLIPSE = 15  # compute_unknown(x, 30): the detail-branch sites
OS4_FUSE_ELLIPSE = 13  # compute_unknown(x, 27): where OS4 replaces OS8
OS1_FUSE_ELLIPSE = 7  # compute_unknown(x, 15): where OS1 replaces the fused OS4
BBOX_THRESHOLD = 0.1
BBOX_PADDING = 30
VIDEO_SATURATION = 0.95


@lru_cache(maxsize=8)
def ellipse_kernel(size: int) -> np.ndarray:
    """``cv2.getStructuringElement(MORPH_ELLIPSE, (size, size))`` as uint8 0/1."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def uncertain(alpha: torch.Tensor) -> torch.Tensor:
    """Strictly between 1/255 and 254/255 (float32 comparisons), as a bool tensor."""
    return (alpha > 1.0 / 255.0) & (alpha < 254.0 / 255.0)


def dilate(binary: torch.Tensor, size: int) -> torch.Tensor:
    """Binary dilation with an ellipse of ``size`` (centre anchor, nothing outside the image).

    Shape:
        binary: (..., H, W) bool or 0/1; returns (..., H, W) uint8 0/1 on the same device.
    """
    kernel = ellipse_kernel(size)
    if binary.device.type == "cpu":
        maps = binary.to(torch.uint8).reshape(-1, *binary.shape[-2:]).numpy()  # (M, H, W)
        out = np.empty_like(maps)
        for i in range(maps.shape[0]):
            out[i] = cv2.dilate(maps[i], kernel)
        return torch.from_numpy(out).view(binary.shape)
    weight = torch.from_numpy(kernel).to(binary.device, torch.float32)[None, None]
    flat = binary.reshape(-1, 1, *binary.shape[-2:]).to(torch.float32)  # (M, 1, H, W)
    counts = F.conv2d(flat, weight, padding=size // 2)
    return (counts > 0.5).to(torch.uint8).view(binary.shape)


def compute_unknown(alpha: torch.Tensor, size: int) -> torch.Tensor:
    """Dilated uncertainty band ``U_size(alpha)`` (official ``compute_unknown``), uint8 0/1.

    Shape:
        alpha: (..., H, W) float32; returns (..., H, W) uint8.
    """
    return dilate(uncertain(alpha), size)


def smooth(alpha: torch.Tensor) -> torch.Tensor:
    """The official ``smooth`` (MAGGIE_SPEC §9.2): a row-repeated squared Gaussian, cropped.

    Zero-pad 3, depthwise 7x7 conv with ``K[r, c] = g[c]**2`` (g: sigma 3, normalised), crop 3
    pixels on every side, then bilinear (align_corners=False) back to H x W.

    Shape:
        alpha: (B, C, H, W); returns (B, C, H, W).
    """
    channels = alpha.shape[1]
    x = torch.arange(7, dtype=torch.float32, device=alpha.device) - 3
    gauss = torch.exp(-(x ** 2) / 18.0)
    gauss = gauss / gauss.sum()
    kernel = (gauss * gauss).expand(channels, 1, 7, 7).contiguous()  # rows repeat: (C, 1, 7, 7)
    out = F.conv2d(F.pad(alpha, (3, 3, 3, 3)), kernel, groups=channels)  # (B, C, H, W)
    out = out[..., 3:-3, 3:-3]  # (B, C, H-6, W-6)
    return F.interpolate(out, size=alpha.shape[-2:], mode="bilinear", align_corners=False)


def _span_keep(present: torch.Tensor) -> torch.Tensor:
    """Rows (or columns) kept by the padded, exclusive-end box around the present ones.

    Shape:
        present: (B, C, L) bool; returns (B, C, L) bool.
    """
    length = present.shape[-1]
    index = torch.arange(length, device=present.device)
    first = torch.where(present, index, length).amin(dim=-1, keepdim=True)  # (B, C, 1)
    last = torch.where(present, index, -1).amax(dim=-1, keepdim=True)
    start = (first - BBOX_PADDING).clamp(min=0)
    end = (last + BBOX_PADDING).clamp(max=length)
    return (index >= start) & (index < end)


def bbox_keep_mask(alpha_os8: torch.Tensor) -> torch.Tensor:
    """Video-only box limit (MAGGIE_SPEC §9 step 4): 1 inside each instance's padded box.

    The box spans the pixels where ``smooth(alpha) > 0.1``, padded by 30 with an exclusive end;
    a map without such pixels is kept whole.

    Shape:
        alpha_os8: (B, C, H, W); returns (B, C, H, W) bool.
    """
    on = smooth(alpha_os8) > BBOX_THRESHOLD
    rows = on.any(dim=-1)  # (B, C, H)
    cols = on.any(dim=-2)  # (B, C, W)
    box = _span_keep(rows).unsqueeze(-1) & _span_keep(cols).unsqueeze(-2)  # (B, C, H, W)
    empty = ~rows.any(dim=-1)  # (B, C)
    return box | empty[..., None, None]


def fuse_predictions(alpha_os8: torch.Tensor, alpha_os4: torch.Tensor, alpha_os1: torch.Tensor,
                     detail_mask: torch.Tensor) -> torch.Tensor:
    """Official ``fuse``: OS4 replaces OS8, then OS1 replaces the result, on dilated bands.

    The official blend ``a * w + b * (1 - w)`` with w in {0, 1} is an exact select for finite
    values, computed here with ``torch.where`` to avoid full-size temporaries.

    Shape:
        all inputs: (B, C, H, W) (detail_mask uint8 0/1); returns (B, C, H, W).
    """
    weight_os4 = (compute_unknown(alpha_os8, OS4_FUSE_ELLIPSE) * detail_mask) > 0
    fused = torch.where(weight_os4, alpha_os4, alpha_os8)
    del weight_os4
    weight_os1 = (compute_unknown(fused, OS1_FUSE_ELLIPSE) * detail_mask) > 0
    return torch.where(weight_os1, alpha_os1, fused)
