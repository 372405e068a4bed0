"""Frame and mask preparation matching the official XMem eval.py (spec section 2).

Used by the pipeline around :class:`actormatte.propagation.processor.XMemProcessor`:
``normalise_frame`` -> ``resize_for_xmem`` -> ``step`` -> ``upsample_prob``; annotation masks go
through ``resize_mask_for_xmem``. Resizes are torchvision < 0.17 semantics (no antialiasing),
which is what the released weights were evaluated with. Quirk Q5 is kept: the mask size uses a
different float expression from the image size, and the two can differ by one pixel; callers
must then resize the mask to the image size themselves (``resize_mask_to``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from actormatte.errors import ShapeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise_frame(rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """ImageNet-normalise an sRGB frame: uint8 is divided by 255, floats are taken as 0..1.

    Shape:
        rgb: (H, W, 3) -> (3, H, W) float32
    """
    x = torch.as_tensor(np.asarray(rgb)) if not isinstance(rgb, torch.Tensor) else rgb
    if x.ndim != 3 or x.shape[2] != 3:
        raise ShapeError(f"frame must be (H, W, 3) RGB, got {tuple(x.shape)}")
    chw = x.permute(2, 0, 1).contiguous()  # (3, H, W)
    if chw.dtype == torch.uint8:
        chw = chw.to(torch.float32).div(255)
    elif chw.is_floating_point():
        chw = chw.to(torch.float32)
    else:
        raise ShapeError(f"frame must be uint8 or float in 0..1, got {x.dtype}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=chw.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=chw.device).view(3, 1, 1)
    return chw.sub(mean).div(std)


def prepare_xmem_frame(rgb: np.ndarray, size: int = 480,
                       device: torch.device | str = "cpu",
                       pixel_aspect: float = 1.0) -> torch.Tensor:
    """:func:`normalise_frame` then :func:`resize_for_xmem`, done resize-first on ``device``.

    The bilinear resize is linear and the normalisation affine per channel, so the order only
    changes float rounding (a few ulp, < 1e-6); resizing first normalises 480p instead of the
    plate, and the uint8 frame (a quarter of the float bytes) is what moves to the device.
    Non-square pixels are squared on the way (see :func:`xmem_image_size`).

    Shape:
        rgb: (H, W, 3) uint8 -> (3, h, w) float32, :func:`xmem_image_size` of the plate
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ShapeError(f"frame must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    chw = torch.from_numpy(rgb).to(device).permute(2, 0, 1).float()  # (3, H, W) 0..255
    height, width = chw.shape[-2:]
    target = xmem_image_size(height, width, size, pixel_aspect)
    if target != (height, width):
        chw = F.interpolate(chw.unsqueeze(0), size=target, mode="bilinear",
                            align_corners=False)[0]
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=chw.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=chw.device).view(3, 1, 1)
    return chw.div_(255).sub_(mean).div_(std)


def xmem_image_size(height: int, width: int, size: int = 480,
                    pixel_aspect: float = 1.0) -> tuple[int, int]:
    """The processing size eval.py uses for a frame: shorter side ``size``, long side truncated.

    With non-square pixels (``pixel_aspect`` = pixel width / height, 2 for 2:1 anamorphic) the
    rule applies to the squared picture, ``width * pixel_aspect`` wide, so XMem sees the actors
    in their true proportions; its probabilities are resized back to the plate's own pixels.
    Square pixels give eval.py's size exactly; ``size <= 0`` keeps the height.
    """
    if pixel_aspect != 1.0:
        squared = width * pixel_aspect
        if size <= 0:
            return height, max(1, int(round(squared)))
        if squared <= height:
            return max(1, int(size * height / squared)), size
        return size, max(1, int(size * squared / height))
    if size <= 0:
        return height, width
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    return (new_long, size) if width <= height else (size, new_long)


def xmem_mask_size(height: int, width: int, size: int = 480) -> tuple[int, int]:
    """The size eval.py resizes annotation masks to (quirk Q5: its own float expression)."""
    if size <= 0:
        return height, width
    min_hw = min(height, width)
    return int(height / min_hw * size), int(width / min_hw * size)


def resize_for_xmem(image: torch.Tensor, size: int = 480) -> torch.Tensor:
    """Resize a normalised frame as eval.py ``--size``: bilinear, no antialias; -1 = as is.

    Shape:
        image: (3, H, W) -> (3, h, w) with min(h, w) = size
    """
    height, width = image.shape[-2:]
    if size <= 0 or min(height, width) == size:
        return image
    out = F.interpolate(image.unsqueeze(0), size=xmem_image_size(height, width, size),
                        mode="bilinear", align_corners=False)
    return out[0]


def resize_mask_for_xmem(mask: torch.Tensor, size: int = 480) -> torch.Tensor:
    """Resize a one-hot annotation as eval.py: legacy nearest to :func:`xmem_mask_size`.

    Shape:
        mask: (N, H, W) -> (N, h, w)
    """
    if size <= 0:
        return mask
    return resize_mask_to(mask, xmem_mask_size(mask.shape[-2], mask.shape[-1], size))


def resize_mask_to(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Legacy-nearest resize of a mask stack to ``hw``. Shape: (N, H, W) -> (N, *hw)."""
    return F.interpolate(mask.unsqueeze(0).float(), size=hw, mode="nearest")[0]


def upsample_prob(prob: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bring probabilities back to the plate size (bilinear, align_corners=False), as eval.py.

    Shape:
        prob: (N+1, h, w) -> (N+1, *hw)
    """
    if tuple(prob.shape[-2:]) == tuple(hw):
        return prob
    out = F.interpolate(prob.unsqueeze(1), size=hw, mode="bilinear", align_corners=False)
    return out[:, 0]
