"""The InternVideo transformer block: RMSNorm, qk-normed attention, LayerScale, MLP, drop path."""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import nn

from .attention import Attention
from .drop import DropPath
from .flags import check_fused_flags
from .layer_scale import LayerScale
from .mlp import make_mlp
from .norm import RMSNorm


def merge_residual(x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    """The hidden state after a :class:`Block`: ``x + residual`` in the fused setting, ``x`` otherwise."""
    return x if residual is None else x + residual


class Block(nn.Module):
    """Pre-norm transformer block with the original's flag semantics.

    ``forward(x, residual)`` returns ``(x, residual)``, like the original:

    * unfused (flags off): ``x <- x + ls1(attn(norm1(x)))``, ``x <- x + ls2(mlp(norm2(x)))``;
      ``residual`` stays ``None``.
    * fused (flags on): the norms add the incoming branch to the residual stream and normalise the
      sum (flash-attn ``DropoutAddRMSNorm(prenorm=True)``); the block returns the MLP branch and the
      stream separately, so the hidden state is :func:`merge_residual` ``(x, residual)``. The MLP uses
      tanh-GELU. Apart from that GELU, both settings compute the same function in fp32.

    Keys: ``norm1``, ``attn.{qkv,proj,q_norm,k_norm}``, ``ls1.gamma``, ``norm2``, ``mlp.{fc1,fc2}``, ``ls2.gamma``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        qk_normalization: bool = False,
        init_values: float | None = None,
        drop_path: float = 0.0,
        attn_drop: float = 0.0,
        use_flash_attn: bool = False,
        use_fused_rmsnorm: bool = False,
        use_fused_mlp: bool = False,
        layerscale_force_fp32: bool = True,
        norm_eps: float = 1e-6,
        with_cp: bool = False,
    ):
        super().__init__()
        self.fused = check_fused_flags(use_flash_attn, use_fused_rmsnorm, use_fused_mlp)
        self.with_cp = with_cp
        self.norm1 = RMSNorm(dim, eps=norm_eps, fused=self.fused)
        self.attn = Attention(
            dim,
            num_heads,
            qkv_bias=qkv_bias,
            qk_normalization=qk_normalization,
            use_flash_attn=use_flash_attn,
            use_fused_rmsnorm=use_fused_rmsnorm,
            attn_drop=attn_drop,
            norm_eps=norm_eps,
        )
        self.ls1 = self._layer_scale(dim, init_values, layerscale_force_fp32)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = RMSNorm(dim, eps=norm_eps, fused=self.fused)
        self.mlp = make_mlp(dim, int(dim * mlp_ratio), fused=self.fused)
        self.ls2 = self._layer_scale(dim, init_values, layerscale_force_fp32)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    @staticmethod
    def _layer_scale(dim: int, init_values: float | None, force_fp32: bool) -> nn.Module:
        return LayerScale(dim, init_values, force_fp32=force_fp32) if init_values else nn.Identity()

    def _attn_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path1(self.ls1(self.attn(x)))

    def _mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path2(self.ls2(self.mlp(x)))

    def _forward(
        self, x: torch.Tensor, residual: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.fused:
            if residual is not None:
                raise ValueError("an unfused Block takes no separate residual stream")
            x = x + self._attn_branch(self.norm1(x))
            return x + self._mlp_branch(self.norm2(x)), None
        x, residual = self.norm1.forward_add(x, residual)
        x, residual = self.norm2.forward_add(self._attn_branch(x), residual)
        return self._mlp_branch(x), residual

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.with_cp and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(self._forward, x, residual, use_reentrant=False)
        return self._forward(x, residual)


def make_blocks(
    depth: int,
    dim: int,
    num_heads: int,
    mlp_ratio: float = 4.0,
    drop_path_rate: float = 0.0,
    use_checkpoint: bool = False,
    checkpoint_num: int = 0,
    layerscale_no_force_fp32: bool = False,
    **block_kwargs,
) -> nn.ModuleList:
    """``depth`` :class:`Block` s as the InternVideo backbones stack them.

    Drop path rises linearly from 0 to ``drop_path_rate``; with ``use_checkpoint`` the first
    ``checkpoint_num`` blocks recompute activations in backward. ``layerscale_no_force_fp32`` is the
    original's argument name (the inverse of :class:`Block`'s ``layerscale_force_fp32``).
    """
    drop_path = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
    return nn.ModuleList(
        Block(
            dim,
            num_heads,
            mlp_ratio,
            drop_path=drop_path[i],
            layerscale_force_fp32=not layerscale_no_force_fp32,
            with_cp=use_checkpoint and i < checkpoint_num,
            **block_kwargs,
        )
        for i in range(depth)
    )
