"""A tiny joint space-time video ViT for testing the shared training engine.

It follows the conventions the engine relies on (timm ``Block``s, ``group_matcher`` for
layer-wise lr decay, ``no_weight_decay``) without depending on any generation.
"""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn


class TinyVideoViT(nn.Module):
    def __init__(
        self,
        num_classes: int = 4,
        img_size: int = 32,
        patch_size: int = 8,
        num_frames: int = 4,
        tubelet_size: int = 1,
        embed_dim: int = 32,
        depth: int = 2,
        num_heads: int = 2,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.patch_embed = nn.Conv3d(
            3,
            embed_dim,
            (tubelet_size, patch_size, patch_size),
            stride=(tubelet_size, patch_size, patch_size),
        )
        num_patches = (num_frames // tubelet_size) * (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio=2.0, drop_path=d) for d in dpr)
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)

    @torch.jit.ignore
    def no_weight_decay(self):
        return {"pos_embed", "cls_token"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False):
        # The head gets a group of its own (timm's (99999,) would merge it into the last block),
        # so layer-wise lr decay gives it scale 1 and the last block `decay`, as the original.
        return {
            "stem": r"^cls_token|^pos_embed|^patch_embed",
            "blocks": [(r"^blocks\.(\d+)", None), (r"^norm|^head", (100000,))],
        }

    def get_num_layers(self) -> int:
        return len(self.blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[:, 0])
