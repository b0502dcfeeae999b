"""Exact softmax self-attention with the InternVideo qk-norm (an RMSNorm over the whole width)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .flags import flash_attn_func, on_cuda
from .norm import RMSNorm


def dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dropout_p: float = 0.0,
    scale: float | None = None,
    use_flash_attn: bool = False,
) -> torch.Tensor:
    """Softmax attention on tensors laid out ``(batch, tokens, heads, head_dim)``; returns that layout.

    The layout is explicit because flash-attn expects exactly this one (the original VideoMAE teacher
    passed ``(B, H, N, D)`` and so attended across heads instead of tokens). flash-attn's kernel runs
    only when asked for, installed, on CUDA and in half precision; otherwise PyTorch's
    ``scaled_dot_product_attention`` computes the same exact softmax attention.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"expected (B, N, H, D) tensors, got shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    kernel = flash_attn_func() if use_flash_attn else None
    if kernel is not None and on_cuda(q, k, v) and q.dtype in (torch.float16, torch.bfloat16):
        return kernel(q, k, v, dropout_p=dropout_p, softmax_scale=scale)
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p=dropout_p, scale=scale
    )
    return out.transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention: ``qkv`` projection, optional qk-norm, exact softmax, ``proj``.

    ``qk_normalization`` applies one :class:`RMSNorm` to all heads of q (and one to k) together,
    i.e. over the full width, as the original does -- not a per-head norm. ``use_fused_rmsnorm``
    picks the flash-attn flavour of that norm; ``use_flash_attn`` allows the flash-attn kernel.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = False,
        qk_normalization: bool = False,
        use_flash_attn: bool = False,
        use_fused_rmsnorm: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.use_flash_attn = use_flash_attn
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.qk_normalization = qk_normalization
        if qk_normalization:
            self.q_norm = RMSNorm(dim, eps=norm_eps, fused=use_fused_rmsnorm)
            self.k_norm = RMSNorm(dim, eps=norm_eps, fused=use_fused_rmsnorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)
        heads = (batch, tokens, self.num_heads, width // self.num_heads)
        out = dot_product_attention(
            q.reshape(heads),
            k.reshape(heads),
            v.reshape(heads),
            dropout_p=self.attn_drop if self.training else 0.0,
            use_flash_attn=self.use_flash_attn,
        )
        return self.proj_drop(self.proj(out.reshape(batch, tokens, width)))
