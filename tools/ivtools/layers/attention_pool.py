"""Attention pooling: one query (the token mean) cross-attends over all tokens (``clip_projector``)."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttention(nn.Module):
    """Cross-attention with separate ``q``/``k``/``v`` projections and optional free-standing biases.

    Parameter names (``q.weight``, ``q_bias``, ..., ``proj.*``) follow the released checkpoints;
    ``proj`` may change the width (``out_dim``).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, out_dim: int | None = None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.k_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.k_bias = self.v_bias = None
        self.proj = nn.Linear(dim, out_dim or dim)

    def _heads(self, x: torch.Tensor, linear: nn.Linear, bias: torch.Tensor | None) -> torch.Tensor:
        batch, tokens, width = x.shape
        projected = F.linear(x, linear.weight, bias)
        return projected.reshape(batch, tokens, self.num_heads, width // self.num_heads).transpose(1, 2)

    def forward(
        self, x_q: torch.Tensor, x_k: torch.Tensor, x_v: torch.Tensor, return_attn: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(output (B, Nq, out_dim), attention (B, Nq, Nk) averaged over heads or None)``."""
        q = self._heads(x_q, self.q, self.q_bias)
        k = self._heads(x_k, self.k, self.k_bias)
        v = self._heads(x_v, self.v, self.v_bias)
        if return_attn:
            attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
            attn = attn.softmax(dim=-1)
            out, mean_attn = attn @ v, attn.mean(1)
        else:
            out, mean_attn = F.scaled_dot_product_attention(q, k, v), None
        out = out.transpose(1, 2).flatten(2)
        return self.proj(out), mean_attn


class AttentionPoolingBlock(nn.Module):
    """Pool ``(B, N, dim)`` tokens to ``(B, out_dim)``: LayerNorm'd token mean attends over the tokens.

    Keys: ``norm1_q``, ``norm1_k``, ``norm1_v`` (LayerNorm, eps 1e-5) and ``cross_attn.*``.
    """

    def __init__(self, dim: int, num_heads: int, out_dim: int, qkv_bias: bool = True, norm_eps: float = 1e-5):
        super().__init__()
        norm = partial(nn.LayerNorm, eps=norm_eps)
        self.norm1_q = norm(dim)
        self.norm1_k = norm(dim)
        self.norm1_v = norm(dim)
        self.cross_attn = CrossAttention(dim, num_heads=num_heads, qkv_bias=qkv_bias, out_dim=out_dim)

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        """Pooled ``(B, out_dim)``; with ``return_attn`` also the query's attention ``(B, 1, N)``."""
        query = self.norm1_q(x.mean(1, keepdim=True))
        pooled, attn = self.cross_attn(query, self.norm1_k(x), self.norm1_v(x), return_attn=return_attn)
        pooled = pooled.squeeze(1)
        return (pooled, attn) if return_attn else pooled
