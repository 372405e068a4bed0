"""Temporal parts of the MaGGIe video network and the official temporal post-processing rule.

* :class:`ConvGRU` (``decoder.os8_temp_module``) and :func:`bidirectional_gru` aggregate the OS8
  instance features over the clip (MAGGIE_SPEC §8.1).
* :class:`DiffModule` (``decoder.diff_module``) predicts, for each pair of neighbouring frames,
  where the matte changes; :func:`temporal_diffs` runs it in the official call order (§12), which
  matters for the stateful spectral norm.
* :func:`official_temporal_rule` is the hard-coded post-processing of ``MaGGIe_Temp.forward`` in
  eval mode (§13) as a pure function. The network itself (:class:`.model.MaggieNetwork`) returns
  the matte *before* this rule; :func:`actormatte.matting.reference.forward_official` applies it
  to reproduce the official outputs, and window runners may apply it or their own fusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from actormatte.errors import ShapeError
from actormatte.matting.spectral_norm import SpectralNormConv2d


class ConvGRU(nn.Module):
    """Convolutional GRU cell; ``ih`` gives the reset/update gates, ``hh`` the candidate."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        self.channels = channels
        self.ih = nn.Sequential(nn.Conv2d(2 * channels, 2 * channels, 3, padding=1), nn.Sigmoid())
        self.hh = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step; returns the new hidden state.

        Shape:
            x, h: (B, C, h8, w8); returns (B, C, h8, w8).
        """
        reset, update = self.ih(torch.cat([x, h], dim=1)).split(self.channels, dim=1)
        candidate = self.hh(torch.cat([x, reset * h], dim=1))
        return (1 - update) * h + update * candidate


def bidirectional_gru(cell: ConvGRU, feat: torch.Tensor) -> torch.Tensor:
    """Forward pass from h=0, backward pass from the last forward state, averaged.

    The last frame keeps its forward state (it has no backward partner).

    Shape:
        feat: (B, T, C, h8, w8); returns (B, T, C, h8, w8).
    """
    frames = feat.shape[1]
    hidden = torch.zeros_like(feat[:, 0])
    forward_states = []
    for t in range(frames):
        hidden = cell(feat[:, t], hidden)
        forward_states.append(hidden)
    out = [forward_states[-1]] * frames
    for t in range(frames - 2, -1, -1):
        hidden = cell(feat[:, t], hidden)
        out[t] = (forward_states[t] + hidden) / 2
    return torch.stack(out, dim=1)


class DiffModule(nn.Sequential):
    """``decoder.diff_module``: change logits at OS8 from two concatenated OS8 features."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__(
            SpectralNormConv2d(2 * channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(),
            SpectralNormConv2d(channels, channels // 2, 3, padding=1),
            nn.BatchNorm2d(channels // 2), nn.ReLU(),
            nn.Conv2d(channels // 2, 1, 3, padding=1, bias=False),
        )


def _uses_stateful_spectral_norm(module: nn.Module) -> bool:
    return any(isinstance(m, SpectralNormConv2d) and m.mode == "stateful"
               for m in module.modules())


def temporal_diffs(diff: DiffModule, feat: torch.Tensor,
                   size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward change probabilities of every frame (MAGGIE_SPEC §12).

    Forward: ``dF[t] = diff(D8[t-1], D8[t])`` for t = 1..T-1; backward:
    ``dB[t-1] = diff(D8[t], D8[t-1])`` for t = T-1..1; ``dF[0]`` and ``dB[T-1]`` are logit 0.
    With stateful spectral norm the module runs once per pair in exactly that order (its state
    changes between calls); frozen spectral norm lets all pairs run as one batch.

    Shape:
        feat: (B, T, C, h8, w8) the non-temporal OS8 feature D8.
        returns: two (B, T, 1, H, W) sigmoid maps, ``size`` = (H, W).
    """
    batch, frames = feat.shape[:2]
    zeros = feat.new_zeros(batch, 1, 1, *feat.shape[-2:])
    if frames < 2:
        logits_f = logits_b = zeros
    elif _uses_stateful_spectral_norm(diff):
        fwd = [diff(torch.cat([feat[:, t - 1], feat[:, t]], dim=1)) for t in range(1, frames)]
        bwd = [diff(torch.cat([feat[:, t], feat[:, t - 1]], dim=1))
               for t in range(frames - 1, 0, -1)]
        logits_f = torch.stack([zeros[:, 0], *fwd], dim=1)  # (B, T, 1, h8, w8)
        logits_b = torch.stack([*bwd[::-1], zeros[:, 0]], dim=1)
    else:
        prev, nxt = feat[:, :-1], feat[:, 1:]  # (B, T-1, C, h8, w8)
        pairs = torch.cat([torch.cat([prev, nxt], dim=2), torch.cat([nxt, prev], dim=2)], dim=1)
        out = diff(pairs.flatten(0, 1)).view(batch, 2, frames - 1, 1, *feat.shape[-2:])
        logits_f = torch.cat([zeros, out[:, 0]], dim=1)  # (B, T, 1, h8, w8)
        logits_b = torch.cat([out[:, 1], zeros], dim=1)
    up_f = F.interpolate(logits_f.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
    up_b = F.interpolate(logits_b.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
    return (torch.sigmoid(up_f).view(batch, frames, 1, *size),  # (B, T, 1, H, W)
            torch.sigmoid(up_b).view(batch, frames, 1, *size))


def official_temporal_rule(refined: torch.Tensor, diff_forward: torch.Tensor,
                           diff_backward: torch.Tensor,
                           prev: torch.Tensor | None = None) -> torch.Tensor:
    """The eval post-processing of ``MaGGIe_Temp.forward`` (MAGGIE_SPEC §13), as a pure function.

    Frames 1 and 2 are hard-coded and the last frame plays ``nxt`` (it aliases frame 2 when
    T = 3; the right-hand sides are evaluated before any write, as in the official code):
    frame 1 keeps its own prediction unless both diffs say "static" and ``prev`` and ``nxt``
    agree exactly; frame 2 takes the fused frame 1 where the forward diff says "static".

    Args:
        refined: fused alpha before the rule; not modified.
        diff_forward: forward change probability; thresholded at > 0.5.
        diff_backward: backward change probability.
        prev: frame 1 of the previous window after this rule, or None (frame 0 is used).

    Returns:
        A new tensor: ``refined`` with frames 1 and 2 replaced.

    Raises:
        ShapeError: fewer than 3 frames, or inconsistent shapes.

    Shape:
        refined: (B, T, N, H, W); diff_*: (B, T, 1 or N, H, W); prev: (B, N, H, W).
    """
    if refined.dim() != 5 or refined.shape[1] < 3:
        raise ShapeError(f"the temporal rule needs (B, T>=3, N, H, W), got {tuple(refined.shape)}")
    if prev is not None and prev.shape != refined[:, 0].shape:
        raise ShapeError(f"prev must be {tuple(refined[:, 0].shape)}, got {tuple(prev.shape)}")
    out = refined.clone()
    prev = refined[:, 0] if prev is None else prev
    nxt = refined[:, -1]
    changed_f = (diff_forward > 0.5).to(refined.dtype)
    changed_b = (diff_backward > 0.5).to(refined.dtype)
    mid = refined[:, 1]
    fused_f = prev * (1 - changed_f[:, 1]) + mid * changed_f[:, 1]
    fused_b = nxt * (1 - changed_b[:, 1]) + mid * changed_b[:, 1]
    disagree = (fused_f - fused_b).abs() > 0
    fused_f = torch.where(disagree, mid, fused_f)
    out[:, 2] = fused_f * (1 - changed_f[:, 2]) + nxt * changed_f[:, 2]
    out[:, 1] = fused_f
    return out
