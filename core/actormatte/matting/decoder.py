"""MaGGIe decoder: OS32->OS8 trunk, instance mattes at OS8, uncertainty, detail branch, fusion.

:class:`MaggieDecoder` owns every ``decoder.*`` checkpoint key. Its data flow (MAGGIE_SPEC
§7-§12) is split into named stages so tests and tools can look inside:

1. :meth:`MaggieDecoder.trunk`: two upsampling stages with the encoder shortcuts -> OS8 feature.
2. :meth:`MaggieDecoder.coarse`: instance tokens (``refine_OS8``), the ConvGRU for video, the
   OS8 logits and the detail feature ``D8``.
3. :meth:`MaggieDecoder.coarse_alpha`: OS8 alpha, uncertainty band, video box limit.
4. :meth:`MaggieDecoder.details`: the sparse detail branch (:mod:`actormatte.matting.sparse`,
   written apart; its layers are registered here in checkpoint order) -> OS4 and OS1 alpha.
5. fusion (:func:`.uncertainty.fuse_predictions`) and, for video, the temporal diffs.

The official temporal post-processing is *not* applied here (see :mod:`.temporal`).
Called by :class:`actormatte.matting.model.MaggieNetwork`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from actormatte.matting.attention import FFN, InstanceMatteDecoder
from actormatte.matting.config import MaggieArchConfig
from actormatte.matting.encoder import EncoderFeatures
from actormatte.matting.outputs import MattingOutput
from actormatte.matting.sparse import Backend, detail_layer_modules, predict_details
from actormatte.matting.spectral_norm import SpectralNormConv2d
from actormatte.matting.temporal import ConvGRU, DiffModule, bidirectional_gru, temporal_diffs
from actormatte.matting.uncertainty import (
    UNKNOWN_ELLIPSE,
    VIDEO_SATURATION,
    bbox_keep_mask,
    compute_unknown,
    fuse_predictions,
)

if TYPE_CHECKING:
    from actormatte.matting.sparse_spconv import SpconvProgram


class DecoderBlock(nn.Module):
    """Decoder BasicBlock (LeakyReLU 0.2); with ``upsample`` it doubles the resolution.

    Upsampling block: ConvTranspose(k4 s2 p1)-BN-LReLU-conv3x3-BN + (nearest x2, conv1x1, BN).
    """

    def __init__(self, in_channels: int, out_channels: int, upsample: bool = False) -> None:
        super().__init__()
        if upsample:
            self.conv1 = SpectralNormConv2d(in_channels, in_channels, 4, stride=2, padding=1,
                                            transposed=True)
        else:
            self.conv1 = SpectralNormConv2d(in_channels, in_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = SpectralNormConv2d(in_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.upsample: nn.Sequential | None = None
        if upsample:
            self.upsample = nn.Sequential(
                nn.UpsamplingNearest2d(scale_factor=2),
                SpectralNormConv2d(in_channels, out_channels, 1),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` (B,C,H,W)."""
        identity = x if self.upsample is None else self.upsample(x)
        out = F.leaky_relu_(self.bn1(self.conv1(x)), 0.2)
        out = self.bn2(self.conv2(out))
        return F.leaky_relu_(out.add_(identity), 0.2)


@dataclass(frozen=True)
class CoarseResult:
    """OS8 stage output.

    Shape:
        logits: (B, T, Q, h8, w8) instance logits, all Q slots.
        detail_feat: (B, T, C, h8, w8) ``D8 = conv(non-temporal feature)``.
        kernels: (B, Q, C) instance kernels.
    """

    logits: torch.Tensor
    detail_feat: torch.Tensor
    kernels: torch.Tensor


class MaggieDecoder(nn.Module):
    """The ``decoder.`` subtree; attribute names and order are the checkpoint's.

    The detail-branch modules come from :func:`actormatte.matting.sparse.detail_layer_modules`
    and are registered right after ``refine_OS8`` (checkpoint order).
    """

    inst_spec_layer: nn.Module
    dummy_downscale: nn.Module
    layer3: nn.Module
    guidance_layer: nn.Module
    layer3_smooth: nn.Module
    layer4: nn.Module
    layer4_smooth: nn.Module
    layer5: nn.Module
    layer5_smooth: nn.Module
    refine_OS4: nn.Module
    refine_OS1: nn.Module

    def __init__(self, config: MaggieArchConfig) -> None:
        super().__init__()
        self.config = config
        dim, out_dim = config.atten_dim, config.final_channel
        self.inst_spec_layer = FFN(out_dim)
        self.layer1 = nn.Sequential(DecoderBlock(512, 256, upsample=True), DecoderBlock(256, 256))
        self.layer2 = nn.Sequential(DecoderBlock(256, 128, upsample=True), DecoderBlock(128, 128),
                                    DecoderBlock(128, 128))
        self.refine_OS8 = InstanceMatteDecoder(dim, out_dim, config.num_mask, config.atten_block)
        for name, module in detail_layer_modules():
            self.add_module(name, module)
        # Sparse backend of the detail branch (set by configure_sparse_backend at load); the
        # spconv modules are plain attributes, not submodules: the state dict is unchanged.
        self.sparse_backend: Backend = "auto"
        self.spconv_program: SpconvProgram | None = None
        self.os8_temp_module: ConvGRU | None = None
        self.diff_module: DiffModule | None = None
        if config.is_video:
            self.os8_temp_module = ConvGRU(dim)
            self.diff_module = DiffModule(out_dim)

    def trunk(self, aspp_out: torch.Tensor, feats: EncoderFeatures) -> torch.Tensor:
        """OS32 -> OS8 with the OS16/OS8 shortcuts.

        Shape:
            aspp_out: (BT, 512, h32, w32); returns (BT, 128, h8, w8).
        """
        y16 = self.layer1(aspp_out).add_(feats.fea5)
        return self.layer2(y16).add_(feats.fea4)

    def coarse(self, feat_os8: torch.Tensor, masks: torch.Tensor) -> CoarseResult:
        """Instance tokens, (video) ConvGRU, OS8 logits and the detail feature.

        Shape:
            feat_os8: (BT, 128, h8, w8); masks: (B, T, N, H, W) binary.
        """
        batch, frames, num = masks.shape[:3]
        masks_os8 = F.avg_pool2d(masks.flatten(0, 1), 8) > 0  # (BT, N, h8, w8) any-pixel rule
        masks_os8 = masks_os8.view(batch, frames, num, *masks_os8.shape[-2:]).float()
        feat = feat_os8.view(batch, frames, *feat_os8.shape[1:])  # (B, T, 128, h8, w8)
        feat, kernels = self.refine_OS8(feat, masks_os8, num)
        detail_feat = self.refine_OS8.conv(feat.flatten(0, 1))  # (BT, C, h8, w8)
        if self.os8_temp_module is not None:
            logit_feat = self.refine_OS8.conv(bidirectional_gru(self.os8_temp_module, feat)
                                              .flatten(0, 1))
        else:
            logit_feat = detail_feat
        logit_feat = logit_feat.view(batch, frames, *logit_feat.shape[1:])  # (B, T, C, h8, w8)
        logits = torch.einsum("bqc,btchw->btqhw", kernels, logit_feat)
        detail_feat = detail_feat.view(batch, frames, *detail_feat.shape[1:])
        return CoarseResult(logits=logits, detail_feat=detail_feat, kernels=kernels)

    def coarse_alpha(self, logits: torch.Tensor,
                     num_instances: int) -> tuple[torch.Tensor, torch.Tensor]:
        """OS8 alpha and the detail sites (video: saturation clamp and box limit).

        Shape:
            logits: (BT, Q, h8, w8).
            returns: alpha (BT, N, H, W) float and detail mask (BT, N, H, W) uint8.
        """
        up = F.interpolate(logits[:, :num_instances], scale_factor=8, mode="bilinear",
                           align_corners=False)  # (BT, N, H, W)
        alpha = up.tanh_().add_(1).div_(2)
        if self.config.is_video:
            alpha[alpha >= VIDEO_SATURATION] = 1.0
        unknown = compute_unknown(alpha, UNKNOWN_ELLIPSE)
        if self.config.is_video:
            keep = bbox_keep_mask(alpha)
            unknown.mul_(keep)
            alpha.mul_(keep)
        return alpha, unknown

    def details(self, coarse: CoarseResult, feats: EncoderFeatures,
                unknown: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """OS4 and OS1 alpha from the sparse detail branch (zeros if there is no site).

        Shape:
            unknown: (BT, N, H, W) uint8; returns two (BT, N, H, W) tensors.
        """
        if not bool(unknown.any()):
            zeros = torch.zeros(unknown.shape, dtype=torch.float32, device=unknown.device)
            return zeros, zeros.clone()
        batch, frames = coarse.detail_feat.shape[:2]
        num = unknown.shape[1]
        kernels = coarse.kernels[:, None, :num].expand(-1, frames, -1, -1)  # (B, T, N, C)
        logits = predict_details(self, coarse.detail_feat.flatten(0, 1),
                                 kernels.reshape(batch * frames, num, -1),
                                 feats.fea1, feats.fea2, feats.fea3, unknown,
                                 backend=self.sparse_backend, program=self.spconv_program)
        size = unknown.shape[-2:]
        os4 = F.interpolate(logits.os4, scale_factor=4, mode="bilinear", align_corners=False)
        alpha_os4 = os4.tanh_().add_(1).div_(2).view(unknown.shape)  # (BT*N,1,H,W)->(BT,N,H,W)
        alpha_os1 = ((torch.tanh(logits.os1) + 1) / 2).view(-1, num, *size)
        return alpha_os4, alpha_os1

    def forward(self, aspp_out: torch.Tensor, feats: EncoderFeatures,
                masks: torch.Tensor) -> MattingOutput:
        """Decode one clip per batch element.

        Shape:
            aspp_out: (BT, 512, h32, w32); masks: (B, T, N, H, W) binary.
        """
        return self.forward_os8(self.trunk(aspp_out, feats), feats, masks)

    def forward_os8(self, feat_os8: torch.Tensor, feats: EncoderFeatures,
                    masks: torch.Tensor) -> MattingOutput:
        """Decode from the per-frame trunk output (the window runner reuses it across windows).

        Shape:
            feat_os8: (BT, 128, h8, w8) from :meth:`trunk`; masks: (B, T, N, H, W) binary.
        """
        batch, frames, num, height, width = masks.shape
        coarse = self.coarse(feat_os8, masks)
        alpha_os8, unknown = self.coarse_alpha(coarse.logits.flatten(0, 1), num)
        alpha_os4, alpha_os1 = self.details(coarse, feats, unknown)
        refined = fuse_predictions(alpha_os8, alpha_os4, alpha_os1, unknown)
        diff_f = diff_b = None
        if self.diff_module is not None:
            diff_f, diff_b = temporal_diffs(self.diff_module, coarse.detail_feat, (height, width))

        def clip(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, frames, num, height, width)  # (BT, N, H, W) -> (B, T, N, H, W)

        return MattingOutput(alpha_os8=clip(alpha_os8), alpha_os4=clip(alpha_os4),
                             alpha_os1=clip(alpha_os1), refined=clip(refined),
                             detail_mask=clip(unknown), diff_forward=diff_f, diff_backward=diff_b)
