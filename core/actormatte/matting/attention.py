"""The OS8 instance matte decoder (``decoder.refine_OS8``) and the shared FFN block.

Ten learned instance tokens attend to the OS8 features of every frame of a clip as one joint
sequence, the features attend back to the tokens, and the tokens become per-instance 64-d
kernels (MAGGIE_SPEC §8). The only positional signal is a learned ID embedding. Attention is
single-head post-norm with ``q`` scaled by 1/sqrt(d) before ``q k^T`` and positions added to
queries and keys only. Attribute names reproduce the checkpoint keys. Used by :mod:`.decoder`;
:class:`FFN` is also the decoder's ``inst_spec_layer`` that the sparse detail branch applies.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from actormatte.matting.spectral_norm import PointwiseConv2d


class FFN(nn.Module):
    """Post-norm feed-forward block ``LN(x + linear2(ReLU(linear1(x))))`` on the last dim."""

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden or dim)
        self.linear2 = nn.Linear(hidden or dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` (..., dim)."""
        return self.norm(x + self.linear2(F.relu(self.linear1(x))))


class MLP(nn.Module):
    """A single linear layer held in ``layers`` (the checkpoint's ``feat_proj``/``final_mlp``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(in_dim, out_dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the linear layer to ``x`` (..., in_dim)."""
        return self.layers[0](x)


class Attention(nn.Module):
    """Single-head attention with the parameters of ``nn.MultiheadAttention(dim, 1)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_invalid: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from ``query`` to ``key``/``value``; ``key_invalid`` masks keys out.

        Shape:
            query: (B, Lq, D); key, value: (B, Lk, D); key_invalid: (B, Lk) bool.
            returns: (B, Lq, D).
        """
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = F.linear(query, w_q, b_q)
        k = F.linear(key, w_k, b_k)
        v = F.linear(value, w_v, b_v)
        q = q * math.sqrt(1.0 / float(q.shape[-1]))
        logits = torch.bmm(q, k.transpose(1, 2))  # (B, Lq, Lk)
        if key_invalid is not None:
            logits = logits.masked_fill(key_invalid.unsqueeze(1), float("-inf"))
        return self.out_proj(torch.bmm(torch.softmax(logits, dim=-1), v))


class SelfAttentionLayer(nn.Module):
    """Tokens attend to tokens: ``X = LN(X + attn(X+pos, X+pos, X))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.self_attn = Attention(dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor,
                key_invalid: torch.Tensor | None) -> torch.Tensor:
        """Shape: x, pos (B, L, D); key_invalid (B, L)."""
        q = x + pos
        return self.norm(x + self.self_attn(q, q, x, key_invalid))


class CrossAttentionLayer(nn.Module):
    """``X = LN(X + attn(X+pos_x, M+pos_m, M))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.multihead_attn = Attention(dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, pos_x: torch.Tensor,
                pos_memory: torch.Tensor, key_invalid: torch.Tensor | None = None) -> torch.Tensor:
        """Shape: x, pos_x (B, Lx, D); memory, pos_memory (B, Lm, D); key_invalid (B, Lm)."""
        out = self.multihead_attn(x + pos_x, memory + pos_memory, memory, key_invalid)
        return self.norm(x + out)


class InstanceMatteDecoder(nn.Module):
    """``decoder.refine_OS8``: instance tokens, joint clip attention and the OS8 conv head."""

    def __init__(self, dim: int = 128, out_dim: int = 64, num_tokens: int = 10,
                 num_blocks: int = 2) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.feat_proj = MLP(dim, dim)
        self.sa_layers = nn.ModuleList([SelfAttentionLayer(dim) for _ in range(num_blocks)])
        self.token_feat_ca_layers = nn.ModuleList(
            [CrossAttentionLayer(dim) for _ in range(num_blocks)])
        self.mlp_layers = nn.ModuleList([FFN(dim) for _ in range(num_blocks)])
        self.feat_token_ca_layers = nn.ModuleList(
            [CrossAttentionLayer(dim) for _ in range(num_blocks)])
        self.final_token_feat_ca = CrossAttentionLayer(dim)
        self.final_mlp = MLP(dim, out_dim)
        self.decoder_norm = nn.LayerNorm(out_dim)
        self.query_feat = nn.Embedding(num_tokens, dim)
        self.id_embedding = nn.Embedding(num_tokens + 1, dim)
        self.conv = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim),
            nn.LeakyReLU(0.2, inplace=True),
            PointwiseConv2d(dim, out_dim, bias=False), nn.BatchNorm2d(out_dim),
            nn.LeakyReLU(0.2, inplace=True),
        )

    def forward(self, feat: torch.Tensor, masks_os8: torch.Tensor,
                num_instances: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the token/feature attention over one clip per batch element.

        Args:
            feat: OS8 decoder features.
            masks_os8: binary OS8 instance masks (any pixel of the 8x8 cell on).
            num_instances: N, the real instances; slots >= N are invalid tokens.

        Returns:
            ``(feat, kernels)``: the attended features and the instance kernels
            (``decoder_norm(final_mlp(tokens))``, all slots).

        Shape:
            feat: (B, T, D, h8, w8); masks_os8: (B, T, N, h8, w8) float 0/1.
            returns: (B, T, D, h8, w8) and (B, num_tokens, out_dim).
        """
        batch, frames, dim, h8, w8 = feat.shape
        ids = torch.arange(1, num_instances + 1, device=feat.device, dtype=masks_os8.dtype)
        pixel_id = (masks_os8 * ids.view(1, 1, -1, 1, 1)).amax(dim=2).long()  # (B, T, h8, w8)
        feat_pos = self.id_embedding(pixel_id.flatten(1))  # (B, T*h8*w8, D)
        token_pos = self.id_embedding.weight[1:].unsqueeze(0).expand(batch, -1, -1)  # (B, Q, D)
        present = masks_os8.flatten(3).amax(dim=(1, 3)) > 0  # (B, N)
        token_invalid = torch.ones(batch, self.num_tokens, dtype=torch.bool, device=feat.device)
        token_invalid[:, :num_instances] = ~present
        # A clip with no visible instance would make every key invalid (NaN in the official code);
        # attend to all tokens instead.
        token_invalid[token_invalid.all(dim=1)] = False

        memory = self.feat_proj(feat.permute(0, 1, 3, 4, 2).reshape(batch, -1, dim))  # (B, L, D)
        tokens = self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1)  # (B, Q, D)
        for i in range(len(self.sa_layers)):
            tokens = self.token_feat_ca_layers[i](tokens, memory, token_pos, feat_pos)
            tokens = self.mlp_layers[i](tokens)
            tokens = self.sa_layers[i](tokens, token_pos, token_invalid)
            memory = self.feat_token_ca_layers[i](memory, tokens, feat_pos, token_pos,
                                                  token_invalid)
        tokens = self.final_token_feat_ca(tokens, memory, token_pos, feat_pos)
        kernels = self.decoder_norm(self.final_mlp(tokens))  # (B, Q, out_dim)
        memory = memory.view(batch, frames, h8, w8, dim).permute(0, 1, 4, 2, 3)  # (B,T,D,h8,w8)
        return memory, kernels
