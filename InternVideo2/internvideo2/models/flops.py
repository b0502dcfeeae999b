"""Forward FLOPs of an InternVideo2 model from its shapes (for model-FLOPs utilisation).

Counted: every matrix product (2 FLOPs per multiply-add) -- patch embedding, qkv / proj / MLP of
each block, the two attention products, the attention pool and the classifier head. Not counted:
norms, softmax, activations, additions (linear in the token count, small next to the products). This is
the convention MFU figures use; a backward pass costs about twice the forward.
"""

from __future__ import annotations

import math

from torch import nn

from .backbone import InternVideo2Encoder


def block_flops(tokens: int, dim: int, mlp_hidden: int) -> int:
    """One transformer block on ``tokens`` tokens: qkv, QK^T, AV, proj, fc1, fc2."""
    linear = tokens * dim * (3 * dim + dim + 2 * mlp_hidden)
    attention = 2 * tokens * tokens * dim
    return 2 * (linear + attention)


def attention_pool_flops(tokens: int, dim: int, out_dim: int) -> int:
    """The ``clip_projector``: one query against ``tokens`` keys/values, then ``dim -> out_dim``."""
    return 2 * (dim * dim + 2 * tokens * dim * dim + 2 * tokens * dim + dim * out_dim)


def forward_flops(model: InternVideo2Encoder, batch_size: int = 1, keep_ratio: float = 1.0) -> int:
    """FLOPs of one forward pass of ``model`` on ``batch_size`` videos of its configured size.

    ``keep_ratio`` < 1 counts a masked forward (pretraining) over ``1 + round(keep_ratio * N)``
    tokens; the alignment decoders of pretraining models are then counted on those tokens too.
    """
    if not isinstance(model, InternVideo2Encoder):
        raise TypeError(f"forward_flops needs an InternVideo2 model, got {type(model).__name__}")
    patches = model.patch_embed.num_patches
    tokens = 1 + round(keep_ratio * patches)
    dim = model.embed_dim
    proj = model.patch_embed.proj
    total = 2 * patches * dim * proj.in_channels * math.prod(proj.kernel_size)
    for block in model.blocks:
        total += block_flops(tokens, dim, block.mlp.fc1.out_features)
    total += attention_pool_flops(tokens, dim, model.clip_embed_dim)
    total += _head_flops(model, tokens)
    return batch_size * total


def _linear_flops(module: nn.Module, rows: int) -> int:
    return sum(
        2 * rows * m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear)
    )


def _head_flops(model: nn.Module, tokens: int) -> int:
    """Heads after the pool: the classifier (one row) and any alignment decoders (one row per token)."""
    total = 0
    for name in ("head", "extra_mlp", "final_clip_decoder"):
        if hasattr(model, name):
            total += _linear_flops(getattr(model, name), 1)
    if hasattr(model, "clip_decoder"):
        total += _linear_flops(model.clip_decoder, tokens)
    if hasattr(model, "mae_decoder"):
        total += _linear_flops(model.mae_decoder, tokens - 1)
    return total
