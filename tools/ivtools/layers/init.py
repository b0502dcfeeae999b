"""Weight initialisation shared by the InternVideo ViTs (the original's ``_init_weights`` and
``fix_init_weight``)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from timm.layers import trunc_normal_
from torch import nn


def init_vit_weights(module: nn.Module) -> None:
    """For ``model.apply``: truncated-normal (std 0.02) linear weights with zero bias, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm) and module.weight is not None:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def rescale_residual_branches(blocks: Iterable[nn.Module]) -> None:
    """Divide each block's attention and MLP output projections by sqrt(2 * depth index), so that
    residual-branch outputs shrink with depth (the original's ``fix_init_weight``)."""
    for layer_id, block in enumerate(blocks, start=1):
        block.attn.proj.weight.data.div_(math.sqrt(2.0 * layer_id))
        block.mlp.fc2.weight.data.div_(math.sqrt(2.0 * layer_id))
