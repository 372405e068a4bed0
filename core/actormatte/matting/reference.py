"""The official MaGGIe evaluation protocol, reproduced for checks and the ``reference`` schedule.

This module composes the pure network (:class:`~actormatte.matting.model.MaggieNetwork`) with
what the authors' code does around it (MAGGIE_SPEC §3, §13-§15), so that its outputs equal the
official ones (goldens A, A2, C, P):

* :func:`preprocess_official`: resize to short side 576 (cv2, truncating the new size), pad
  bottom/right to a multiple of 64, normalise; :func:`reverse_official` crops the padding and
  resizes back with bilinear ``align_corners=True`` (both through :mod:`.resample`, the
  product's own transform in its ``official`` mode); :func:`snap_official` maps <= 1/255 to 0 and
  >= 254/255 to 1.
* :func:`forward_official`: the official output dictionary of one forward; for the video model
  ``refined_masks`` includes the temporal rule (:func:`.temporal.official_temporal_rule`).
* :func:`official_video_loop`: 3-frame windows with overlap 2, ``prev_pred`` carried from the
  previous window's middle frame, merged and snapped.

Called by the tests against the goldens and by the pipeline's ``reference`` schedule. The
product's default schedule lives in :mod:`.windows`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from actormatte.errors import InputError, ShapeError
from actormatte.matting.model import MaggieNetwork
from actormatte.matting.resample import Resample
from actormatte.matting.temporal import official_temporal_rule

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_LENGTH = 3
CLIP_OVERLAP = 2


@dataclass(frozen=True)
class TransformInfo:
    """What :func:`preprocess_official` did, for :func:`reverse_official`.

    Attributes:
        orig_hw: the input frame size (h, w).
        resized_hw: after the short-side resize.
        padded_hw: after padding, the network size (Hp, Wp).
        ratio: ``short_side / min(h, w)``.
        pad_hw: rows added at the bottom, columns added at the right.
    """

    orig_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    ratio: float
    pad_hw: tuple[int, int]


def resize_pad_official(frames_u8: np.ndarray, masks_u8: np.ndarray, short_side: int = 576,
                        multiple: int = 64) -> tuple[np.ndarray, np.ndarray, TransformInfo]:
    """The geometric part of the official test transform (ResizeShort, PaddingMultiplyBy).

    The new size is ``(int(w * ratio), int(h * ratio))`` with ``ratio = short_side / min(h, w)``
    (so the short side can come out one pixel short); frames use cv2 INTER_LINEAR, masks
    INTER_NEAREST; the resize is skipped only when the ratio is exactly 1. Padding is zeros at
    the bottom and right up to a multiple of ``multiple``.

    Raises:
        ShapeError: wrong shapes or dtypes.

    Shape:
        frames_u8: (T, h, w, 3) uint8; masks_u8: (T, N, h, w) uint8.
        returns frames (T, Hp, Wp, 3) uint8 and masks (T, N, Hp, Wp) uint8.
    """
    if frames_u8.ndim != 4 or frames_u8.shape[-1] != 3 or frames_u8.dtype != np.uint8:
        raise ShapeError(f"frames must be (T, h, w, 3) uint8, got {frames_u8.shape} "
                         f"{frames_u8.dtype}")
    frames_count, height, width = frames_u8.shape[:3]
    if (masks_u8.ndim != 4 or masks_u8.dtype != np.uint8
            or masks_u8.shape[0] != frames_count or masks_u8.shape[2:] != (height, width)):
        raise ShapeError(f"masks must be (T, N, h, w) = ({frames_count}, N, {height}, {width}) "
                         f"uint8, got {masks_u8.shape} {masks_u8.dtype}")
    plan = Resample.plan(height, width, short_side, mode="official", multiple=multiple)
    frames = np.stack([plan.forward_image(f) for f in frames_u8])  # (T, Hp, Wp, 3)
    masks = np.stack([[plan.forward_labels(m) for m in per_frame]
                      for per_frame in masks_u8])  # (T, N, Hp, Wp)
    info = TransformInfo(orig_hw=(height, width), resized_hw=plan.resized_hw,
                         padded_hw=plan.padded_hw, ratio=plan.ratio, pad_hw=plan.pad_hw)
    return frames, masks.reshape(frames_count, -1, *frames.shape[1:3]), info


def normalize_official(frames_u8: np.ndarray) -> torch.Tensor:
    """ToTensor (``/255``) then Normalize with the ImageNet mean and std, in float32.

    Shape:
        frames_u8: (T, H, W, 3) uint8; returns (T, 3, H, W) float32.
    """
    image = torch.from_numpy(np.ascontiguousarray(frames_u8)).permute(0, 3, 1, 2)  # (T,3,H,W)
    image = image.float().div(255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return image.sub(mean).div(std)


def preprocess_official(frames_u8: np.ndarray, masks_u8: np.ndarray, short_side: int = 576,
                        multiple: int = 64) -> tuple[torch.Tensor, torch.Tensor, TransformInfo]:
    """The official test transform: ResizeShort, PaddingMultiplyBy, ToTensor, Normalize.

    See :func:`resize_pad_official` for the geometry and :func:`normalize_official`.

    Args:
        frames_u8: RGB frames.
        masks_u8: instance masks, 0/255.
        short_side: target short side.
        multiple: pad height and width up to a multiple of this.

    Returns:
        ``(image, mask, info)``: normalised frames, masks / 255, and the transform record.

    Raises:
        ShapeError: wrong shapes or dtypes.

    Shape:
        frames_u8: (T, h, w, 3) uint8; masks_u8: (T, N, h, w) uint8.
        returns image (1, T, 3, Hp, Wp) float32, mask (1, T, N, Hp, Wp) float32.
    """
    frames, masks, info = resize_pad_official(frames_u8, masks_u8, short_side, multiple)
    image = normalize_official(frames)
    mask = torch.from_numpy(masks).float().div(255)
    return image.unsqueeze(0), mask.unsqueeze(0), info


def reverse_official(alpha: torch.Tensor, info: TransformInfo) -> torch.Tensor:
    """Official ``reverse_transform_tensor``: crop the padding, bilinear (align_corners=True).

    Shape:
        alpha: (..., Hp, Wp); returns (..., h, w).
    """
    plan = Resample(info.orig_hw, info.resized_hw, info.padded_hw, "official", 1.0, info.ratio)
    return plan.reverse(alpha)


def snap_official(alpha: torch.Tensor) -> torch.Tensor:
    """The test loop's clamp: values <= 1/255 become 0, values >= 254/255 become 1 (a copy)."""
    out = alpha.clone()
    out[out <= 1.0 / 255.0] = 0.0
    out[out >= 254.0 / 255.0] = 1.0
    return out


def forward_official(net: MaggieNetwork, image: torch.Tensor, mask: torch.Tensor,
                     prev_pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """One official eval forward: the output dictionary of ``MaGGIe`` / ``MaGGIe_Temp``.

    Args:
        net: the image or video network.
        image: normalised frames.
        mask: binary guidance masks.
        prev_pred: video only: frame 1 of the previous window's ``refined_masks``.

    Returns:
        ``alpha_os8, alpha_os4, alpha_os1, refined_masks, detail_mask`` and, for video,
        ``diff_pred_forward, diff_pred_backward``. Video ``refined_masks`` include the temporal
        rule (which needs T >= 3, like the official code).

    Raises:
        ShapeError: bad shapes (see the network's forward); video with fewer than 3 frames.
        InputError: ``prev_pred`` given to the image network.

    Shape:
        image (B, T, 3, H, W); mask (B, T, N, H, W); prev_pred (B, N, H, W);
        outputs (B, T, N, H, W), diffs (B, T, 1, H, W).
    """
    if prev_pred is not None and not net.is_video:
        raise InputError("prev_pred only applies to the video network")
    if net.is_video and image.dim() == 5 and image.shape[1] < CLIP_LENGTH:
        raise ShapeError(f"the official video forward needs at least {CLIP_LENGTH} frames "
                         f"(its temporal rule indexes frames 1 and 2), got {image.shape[1]}")
    out = net(image, mask)
    result = {
        "alpha_os8": out.alpha_os8, "alpha_os4": out.alpha_os4, "alpha_os1": out.alpha_os1,
        "refined_masks": out.refined, "detail_mask": out.detail_mask,
    }
    if out.diff_forward is not None and out.diff_backward is not None:
        result["refined_masks"] = official_temporal_rule(out.refined, out.diff_forward,
                                                         out.diff_backward, prev_pred)
        result["diff_pred_forward"] = out.diff_forward
        result["diff_pred_backward"] = out.diff_backward
    return result


def official_video_loop(net: MaggieNetwork, image: torch.Tensor,
                        mask: torch.Tensor) -> torch.Tensor:
    """The official VIM test loop at network resolution (MAGGIE_SPEC §15).

    Windows of 3 frames start at 0, 1, ..., T-3; each gets ``prev_pred`` = the previous window's
    frame 1 (after the temporal rule, unsnapped). Frame 0 comes from the first window, frame k
    from the window centred on k, the last frame from the last window's third slot; outputs are
    snapped (:func:`snap_official`). A window whose masks are all zero is skipped as in the
    official code (``prev_pred`` is kept); its frames keep the earlier windows' values, and a
    frame no window wrote stays 0 (the official bookkeeping goes out of step there instead).
    With fewer than 3 frames the official loop produces nothing: the result has 0 frames.

    Shape:
        image (1, T, 3, H, W); mask (1, T, N, H, W); returns (T, N, H, W).
    """
    if not net.is_video:
        raise InputError("the official video loop needs the video network")
    if image.dim() != 5 or mask.dim() != 5 or image.shape[0] != 1 or mask.shape[0] != 1:
        raise ShapeError(f"expected image (1, T, 3, H, W) and mask (1, T, N, H, W), got "
                         f"{tuple(image.shape)} and {tuple(mask.shape)}")
    frames = image.shape[1]
    result = image.new_zeros(mask.shape[1:]) if frames >= CLIP_LENGTH else \
        image.new_zeros((0, *mask.shape[2:]))
    prev_pred: torch.Tensor | None = None
    first = True
    for start in range(0, frames - CLIP_OVERLAP, CLIP_LENGTH - CLIP_OVERLAP):
        window_mask = mask[:, start:start + CLIP_LENGTH]
        if not bool(window_mask.any()):
            continue
        refined = forward_official(net, image[:, start:start + CLIP_LENGTH], window_mask,
                                   prev_pred)["refined_masks"]  # (1, 3, N, H, W)
        prev_pred = refined[:, 1]
        snapped = snap_official(refined[0])  # (3, N, H, W)
        if first:
            result[start:start + CLIP_LENGTH] = snapped
            first = False
        else:
            result[start + 1:start + CLIP_LENGTH] = snapped[1:]
    return result
