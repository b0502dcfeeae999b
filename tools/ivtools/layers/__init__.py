"""Model layers shared by the InternVideo generations, with the original's fused-flag semantics.

``use_flash_attn`` / ``use_fused_rmsnorm`` / ``use_fused_mlp`` (they must agree, see
:func:`check_fused_flags`) select the maths the released checkpoints were trained with: tanh-GELU
in the MLP and flash-attn's add-and-RMSNorm residual handling. Everything runs in pure PyTorch;
flash-attn kernels are used only when installed and on CUDA, and compute the same function.

Typical assembly::

    blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, qk_normalization=True, init_values=1e-5,
                                 use_flash_attn=fused, use_fused_rmsnorm=fused, use_fused_mlp=fused)
                           for _ in range(depth))
    residual = None
    for blk in blocks:
        x, residual = blk(x, residual)
    x = merge_residual(x, residual)
    pooled = AttentionPoolingBlock(dim, num_heads=16, out_dim=768)(x)
"""

from .attention import Attention, dot_product_attention
from .attention_pool import AttentionPoolingBlock, CrossAttention
from .block import Block, make_blocks, merge_residual
from .drop import DropPath
from .flags import check_fused_flags
from .init import init_vit_weights, rescale_residual_branches
from .layer_scale import LayerScale
from .mlp import GeluTanhMlp, gelu_layer, make_mlp
from .norm import RMSNorm
from .patch_embed import tubelet_embed
from .pos_embed import sincos_pos_embed_1d, sincos_pos_embed_2d, sincos_pos_embed_3d

__all__ = [
    "Attention",
    "AttentionPoolingBlock",
    "Block",
    "CrossAttention",
    "DropPath",
    "GeluTanhMlp",
    "LayerScale",
    "RMSNorm",
    "check_fused_flags",
    "dot_product_attention",
    "gelu_layer",
    "init_vit_weights",
    "make_blocks",
    "make_mlp",
    "merge_residual",
    "rescale_residual_branches",
    "sincos_pos_embed_1d",
    "sincos_pos_embed_2d",
    "sincos_pos_embed_3d",
    "tubelet_embed",
]
