"""Pieces every InternVideo-Next model shares: the dual-norm patch embedding, the ViT trunk with
several class tokens and a joint 3D sin-cos table, and the MLP decoders of the pretraining heads.

Tokens are ordered ``(t, h, w)`` after ``cls_token_num`` class tokens. A boolean ``mask`` of shape
``(B, T*H*W)`` marks tokens *hidden* from the encoder (True = masked); every sample of a batch must
hide the same number of tokens, as in the original.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from ivtools.checkpoint import interpolate_pos_embed
from ivtools.layers import (
    AttentionPoolingBlock,
    RMSNorm,
    init_vit_weights,
    make_blocks,
    merge_residual,
    rescale_residual_branches,
    sincos_pos_embed_3d,
)


class PatchEmbed(nn.Module):
    """Tubelet patches -> RMSNorm over the raw patch values -> linear projection -> RMSNorm.

    ``norm_before`` normalises each patch vector laid out ``(tubelet, ph, pw, channel)`` (588 values
    for 14x14 RGB) before ``proj``, a Conv3d kept for the checkpoint's ``proj.weight`` shape
    ``[D, C, tubelet, ph, pw]``. Returns ``(B, T', H'*W', D)``.
    """

    def __init__(self, patch_size: int = 14, in_chans: int = 3, embed_dim: int = 768, tubelet_size: int = 1):
        super().__init__()
        self.patch_size, self.tubelet_size, self.in_chans = patch_size, tubelet_size, in_chans
        self.proj = nn.Conv3d(
            in_chans,
            embed_dim,
            kernel_size=(tubelet_size, patch_size, patch_size),
            stride=(tubelet_size, patch_size, patch_size),
        )
        self.norm_before = RMSNorm(tubelet_size * patch_size * patch_size * in_chans, eps=1e-6)
        self.norm = RMSNorm(embed_dim, eps=1e-6)

    def grid(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        p, t = self.patch_size, self.tubelet_size
        if num_frames % t or height % p or width % p:
            raise ValueError(
                f"video of {num_frames} frames x {height}x{width} px does not tile into {t}x{p}x{p} tubelets"
            )
        return num_frames // t, height // p, width // p

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, c, frames, height, width = video.shape
        gt, gh, gw = self.grid(frames, height, width)
        t, p = self.tubelet_size, self.patch_size
        patches = video.reshape(b, c, gt, t, gh, p, gw, p).permute(0, 2, 4, 6, 3, 5, 7, 1)
        patches = self.norm_before(patches.reshape(b, gt * gh * gw, t * p * p * c))
        # The Conv3d over non-overlapping tubelets is this linear map with the kernel flattened in
        # the same (t, ph, pw, c) order as the patch vectors.
        weight = self.proj.weight.permute(0, 2, 3, 4, 1).reshape(self.proj.out_channels, -1)
        tokens = F.linear(patches, weight, self.proj.bias)
        return self.norm(tokens).reshape(b, gt, gh * gw, -1)


class MLPDecoder(nn.Module):
    """``Linear -> GELU -> Linear -> LayerNorm`` (keys ``head.0``, ``head.2``, ``norm``), then optionally L2."""

    def __init__(self, in_channels: int, out_channels: int, l2_normalize: bool = True):
        super().__init__()
        self.head = nn.Sequential(
            nn.Linear(in_channels, in_channels), nn.GELU(), nn.Linear(in_channels, out_channels)
        )
        self.norm = nn.LayerNorm(out_channels, eps=1e-5)
        self.l2_normalize = l2_normalize
        for m in self.head:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.head(x))
        return F.normalize(x, dim=-1) if self.l2_normalize else x


def sincos_table(embed_dim: int, grid: Sequence[int], cls_token_num: int) -> torch.Tensor:
    """``[1, cls_token_num + T*H*W, D]``: zero rows for the class tokens, then the 3D sin-cos table."""
    table = sincos_pos_embed_3d(embed_dim, *grid)
    return torch.cat([torch.zeros(cls_token_num, embed_dim), table]).unsqueeze(0)


def return_layer_indices(
    depth: int, count: int, interval: float = 1, index: list[int] | None = None
) -> list[int]:
    """The original's return layers ``depth - int(i * interval) - 1`` for ``i < count`` (or ``index``), ascending.

    Student and teacher features are paired in this ascending order, as the original collects them.
    """
    layers = sorted(index) if index else sorted(depth - int(i * interval) - 1 for i in range(count))
    if any(not 0 <= i < depth for i in layers):
        raise ValueError(f"return layers {layers} outside [0, {depth})")
    return layers


def drop_masked(tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Keep the unmasked tokens of ``(B, N, D)`` (in order); every row must keep the same count."""
    if mask is None:
        return tokens
    if mask.shape != tokens.shape[:2]:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match tokens {tuple(tokens.shape[:2])}")
    kept = (~mask).sum(1)
    if not torch.all(kept == kept[0]):
        raise ValueError(f"every sample must keep the same number of tokens, got {kept.tolist()}")
    return tokens[~mask].reshape(tokens.shape[0], int(kept[0]), tokens.shape[2])


class VideoTransformer(nn.Module):
    """The InternVideo-Next trunk: patch embedding, class tokens, joint pos-embed, blocks, attention pool.

    ``forward_features`` returns the merged hidden state ``(B, cls + visible, D)`` and the hidden
    states after the blocks listed in ``return_layers`` (in block order).
    """

    extra_pos_embeds: tuple[str, ...] = ()

    def __init__(
        self,
        patch_size: int = 14,
        img_size: int = 224,
        num_frames: int = 16,
        tubelet_size: int = 1,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        qk_normalization: bool = True,
        init_values: float = 1e-5,
        drop_path_rate: float = 0.0,
        use_flash_attn: bool = False,
        use_fused_rmsnorm: bool = False,
        use_fused_mlp: bool = False,
        layerscale_no_force_fp32: bool = False,
        use_checkpoint: bool = False,
        checkpoint_num: int = 0,
        attn_pool_num_heads: int = 16,
        clip_embed_dim: int = 768,
        cls_token_num: int = 4,
    ):
        super().__init__()
        self.embed_dim, self.cls_token_num, self.num_frames = embed_dim, cls_token_num, num_frames
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, tubelet_size)
        self.grid_size = self.patch_embed.grid(num_frames, img_size, img_size)
        self.cls_token = nn.Parameter(torch.zeros(1, cls_token_num, embed_dim))
        table = sincos_table(embed_dim, self.grid_size, cls_token_num)
        for name in ("pos_embed", *self.extra_pos_embeds):
            self.register_parameter(name, nn.Parameter(table.clone()))
        self.blocks = make_blocks(
            depth,
            embed_dim,
            num_heads,
            mlp_ratio,
            drop_path_rate,
            use_checkpoint,
            checkpoint_num,
            layerscale_no_force_fp32,
            qkv_bias=qkv_bias,
            qk_normalization=qk_normalization,
            init_values=init_values,
            use_flash_attn=use_flash_attn,
            use_fused_rmsnorm=use_fused_rmsnorm,
            use_fused_mlp=use_fused_mlp,
        )
        self.clip_projector = AttentionPoolingBlock(embed_dim, attn_pool_num_heads, out_dim=clip_embed_dim)
        trunc_normal_(self.cls_token, std=0.02)
        self.apply(init_vit_weights)
        rescale_residual_branches(self.blocks)

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embed.proj.weight.dtype

    def get_num_layers(self) -> int:
        return len(self.blocks)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"cls_token", "pos_embed", *self.extra_pos_embeds}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        stem = r"^cls_token|^pos_embed|^patch_embed" + "".join(f"|^{n}" for n in self.extra_pos_embeds)
        return {"stem": stem, "blocks": r"^blocks\.(\d+)" if coarse else [(r"^blocks\.(\d+)", None)]}

    def resized(self, table: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """``table`` resampled to ``grid`` (linear in time, bicubic in space) when it differs."""
        return interpolate_pos_embed(table, self.cls_token_num, self.grid_size, grid)

    def embed(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """Patch tokens ``(B, T*H*W, D)`` (no class tokens, no position) and their grid."""
        tokens = self.patch_embed(video.to(self.dtype))
        b, t, hw, d = tokens.shape
        grid = self.patch_embed.grid(*video.shape[2:])
        return tokens.reshape(b, t * hw, d), grid

    def forward_features(
        self,
        video: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_layers: Sequence[int] = (),
    ) -> tuple[torch.Tensor, list[torch.Tensor], tuple[int, int, int]]:
        tokens, grid = self.embed(video)
        pos = self.resized(self.pos_embed, grid)
        n = self.cls_token_num
        cls = self.cls_token.expand(tokens.shape[0], -1, -1) + pos[:, :n]
        x = torch.cat([cls, drop_masked(tokens + pos[:, n:], mask)], dim=1)
        residual, returned = None, []
        for idx, block in enumerate(self.blocks):
            x, residual = block(x, residual)
            if idx in return_layers:
                returned.append(merge_residual(x, residual))
        return merge_residual(x, residual), returned, grid
