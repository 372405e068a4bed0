"""The MaGGIe image (``MaGGIe``) and video (``MaGGIe_Temp``) networks as pure ``nn.Module``s.

``forward(image, mask)`` takes one clip per batch element, already normalised and padded to a
multiple of 32, and returns a :class:`~actormatte.matting.outputs.MattingOutput` at network
resolution with the fused matte *before* the official temporal rule. It does no file IO, keeps no
state between calls other than the spectral-norm vectors in ``"stateful"`` mode, and never
resizes or pads frames (processors do that). The state dict has the official keys, order, shapes
and dtypes, so released checkpoints load as they are (:func:`actormatte.matting.load_maggie`).

Callers: the window runner of the pipeline (product path) and
:mod:`actormatte.matting.reference` (the official protocol).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from actormatte.errors import InputError, ShapeError
from actormatte.matting.aspp import ASPP
from actormatte.matting.config import MaggieArchConfig
from actormatte.matting.decoder import MaggieDecoder
from actormatte.matting.encoder import EncoderFeatures, MaggieEncoder
from actormatte.matting.outputs import MattingOutput
from actormatte.matting.spectral_norm import SpectralNormMode, set_spectral_norm_mode

STRIDE = 32


@dataclass(frozen=True)
class FrameFeatures:
    """What frames contribute to any clip that holds them (:meth:`MaggieNetwork.encode_frames`).

    Attributes:
        feat_os8: decoder trunk output (F, 128, H/8, W/8).
        fea1: OS1 shortcut (F, 32, H, W).
        fea2: OS2 shortcut (F, 32, H/2, W/2).
        fea3: OS4 shortcut (F, 64, H/4, W/4).
    """

    feat_os8: torch.Tensor
    fea1: torch.Tensor
    fea2: torch.Tensor
    fea3: torch.Tensor

    @staticmethod
    def cat(parts: list[FrameFeatures]) -> FrameFeatures:
        """Frames of ``parts`` one after the other (F = sum of the parts' F)."""
        if len(parts) == 1:
            return parts[0]
        return FrameFeatures(*(torch.cat([getattr(p, f) for p in parts])
                               for f in ("feat_os8", "fea1", "fea2", "fea3")))

    def frame(self, index: int) -> FrameFeatures:
        """Frame ``index`` alone, as a copy (so the clip's storage can be freed)."""
        return FrameFeatures(*(getattr(self, f)[index:index + 1].clone()
                               for f in ("feat_os8", "fea1", "fea2", "fea3")))


class MaggieNetwork(nn.Module):
    """Encoder, ASPP and decoder; use :class:`MaGGIeImage` or :class:`MaGGIeVideo`."""

    def __init__(self, config: MaggieArchConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = MaggieEncoder(config.num_mask, config.num_embed)
        self.aspp = ASPP(config.aspp_channels, config.aspp_channels)
        self.decoder = MaggieDecoder(config)

    @property
    def is_video(self) -> bool:
        """Whether this is the video network (ConvGRU, temporal diffs)."""
        return self.config.is_video

    def set_spectral_norm(self, mode: SpectralNormMode) -> None:
        """Switch all spectral-norm convs to ``"stateful"`` or ``"frozen"`` (see spectral_norm)."""
        set_spectral_norm_mode(self, mode)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> MattingOutput:
        """Matte up to 10 instances in each clip of the batch.

        Args:
            image: normalised RGB, ``(frame/255 - mean)/std`` with ImageNet mean/std.
            mask: binary guidance masks (0/1 float or bool), the same N instances in the same
                order in every frame; a smaller mask is resized with nearest, as the official
                code does.

        Returns:
            The mattes at network resolution (``refined`` before the temporal rule).

        Raises:
            ShapeError: wrong ranks, mismatched B/T, H or W not a multiple of 32, no instance.
            InputError: more than 10 instances (the pipeline mattes actors in groups of 10).

        Shape:
            image: (B, T, 3, H, W); mask: (B, T, N, H, W) or (B, T, N, h, w).
        """
        self._check_inputs(image, mask)
        batch, frames, _, height, width = image.shape
        num = mask.shape[2]
        masks = mask.to(image.dtype).reshape(batch * frames, num, *mask.shape[-2:])  # (BT,N,h,w)
        if masks.shape[-2:] != (height, width):
            masks = F.interpolate(masks, size=(height, width), mode="nearest")
        feats = self.encoder(image.reshape(batch * frames, 3, height, width), masks)  # (BT,3,H,W)
        aspp_out = self.aspp(feats.out)
        masks = masks.view(batch, frames, num, height, width)  # (BT,N,H,W) -> (B,T,N,H,W)
        return self.decoder(aspp_out, feats, masks)

    def encode_frames(self, image: torch.Tensor, masks: torch.Tensor) -> FrameFeatures:
        """The per-frame part of :meth:`forward`: encoder, ASPP and decoder trunk.

        A frame's features depend only on the frame and its guidance masks (in slot order), so
        the window runner computes them once per frame and actor slots and reuses them in every
        window holding that frame; :meth:`decode_frames` on the concatenated features of a clip
        is :meth:`forward` of the clip (batch-size rounding aside).

        Shape:
            image: (F, 3, H, W) normalised; masks: (F, N, H, W) binary, H and W of the image.
        """
        feats = self.encoder(image, masks.to(image.dtype))
        feat_os8 = self.decoder.trunk(self.aspp(feats.out), feats)  # (F, 128, H/8, W/8)
        return FrameFeatures(feat_os8=feat_os8, fea1=feats.fea1, fea2=feats.fea2,
                             fea3=feats.fea3)

    def decode_frames(self, frames: FrameFeatures, mask: torch.Tensor) -> MattingOutput:
        """The rest of :meth:`forward` for one clip from its frames' features.

        Shape:
            frames: features of B*T frames (clip-major); mask: (B, T, N, H, W) binary.
        """
        empty = frames.feat_os8.new_empty(0)
        feats = EncoderFeatures(out=empty, fea1=frames.fea1, fea2=frames.fea2, fea3=frames.fea3,
                                fea4=empty, fea5=empty)  # the detail branch reads fea1..fea3
        return self.decoder.forward_os8(frames.feat_os8, feats, mask.to(frames.feat_os8.dtype))

    def _check_inputs(self, image: torch.Tensor, mask: torch.Tensor) -> None:
        if image.dim() != 5 or image.shape[2] != 3:
            raise ShapeError(f"image must be (B, T, 3, H, W), got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise ShapeError(f"image must be a normalised float tensor, got {image.dtype}")
        height, width = image.shape[-2:]
        if height % STRIDE or width % STRIDE or height == 0 or width == 0:
            raise ShapeError(f"image height and width must be positive multiples of {STRIDE} "
                             f"(pad the frames first), got {height}x{width}")
        if mask.dim() != 5 or mask.shape[:2] != image.shape[:2]:
            raise ShapeError(f"mask must be (B, T, N, H, W) with B, T of the image "
                             f"{tuple(image.shape[:2])}, got {tuple(mask.shape)}")
        if not (mask.is_floating_point() or mask.dtype == torch.bool):
            raise ShapeError(f"mask must be float 0/1 or bool, got {mask.dtype}")
        num = mask.shape[2]
        if num == 0:
            raise ShapeError("mask has no instance (N = 0); give at least one instance mask")
        if num > self.config.max_instances:
            raise InputError(f"{num} instances in one forward; MaGGIe mattes at most "
                             f"{self.config.max_instances} at once: the pipeline mattes actors "
                             f"in groups of {self.config.max_instances}")
        if image.shape[1] < 1 or mask.shape[-1] == 0 or mask.shape[-2] == 0:
            raise ShapeError(f"empty clip: image {tuple(image.shape)}, mask {tuple(mask.shape)}")


class MaGGIeImage(MaggieNetwork):
    """The image network (official ``MaGGIe``); frames of a clip are matted jointly."""

    def __init__(self) -> None:
        super().__init__(MaggieArchConfig(variant="image"))


class MaGGIeVideo(MaggieNetwork):
    """The video network (official ``MaGGIe_Temp``): adds the ConvGRU and the temporal diffs."""

    def __init__(self) -> None:
        super().__init__(MaggieArchConfig(variant="video"))


def build_network(config: MaggieArchConfig) -> MaggieNetwork:
    """The network for ``config.variant``, with zero weights, in eval mode."""
    net: MaggieNetwork = MaGGIeVideo() if config.is_video else MaGGIeImage()
    return net.eval()
