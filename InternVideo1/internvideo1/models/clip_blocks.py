"""CLIP-style transformer pieces shared by ViCLIP, UniFormerV2 and the multi-modality model.

Parameter names follow OpenAI CLIP (``attn.in_proj_weight``, ``mlp.c_fc``, ``ln_1`` ...), because
every InternVideo1 checkpoint that starts from CLIP keeps that layout. Tensors are batch-first
(``B, L, C``) here, unlike the original's sequence-first ``nn.MultiheadAttention``; the layout of
the weights does not depend on it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ivtools.layers import DropPath

logger = logging.getLogger(__name__)


class QuickGELU(nn.Module):
    """CLIP's sigmoid approximation of GELU: ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention``'s parameters (packed ``in_proj``, ``out_proj``) on SDPA.

    Called with one tensor it is self-attention; with ``context`` the queries come from ``x`` and
    the keys and values from ``context`` (the UniFormerV2 decoder uses the packed weights so).
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads, self.head_dim, self.dropout = num_heads, dim // num_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        dim = x.shape[-1]
        w_q, w_kv = self.in_proj_weight.split([dim, 2 * dim])
        b_q, b_kv = self.in_proj_bias.split([dim, 2 * dim])
        q = F.linear(x, w_q, b_q)
        k, v = F.linear(x if context is None else context, w_kv, b_kv).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(
            self._heads(q),
            self._heads(k),
            self._heads(v),
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
        )
        return self.out_proj(out.transpose(1, 2).flatten(2))


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """Stochastic depth rising linearly from 0 to ``rate`` over ``depth`` blocks.

    Plain Python so that models can be built on the meta device (no ``Tensor.item``).
    """
    return [rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]


def clip_token_tables(
    width: int, input_resolution: int, patch_size: int
) -> tuple[nn.Parameter, nn.Parameter]:
    """CLIP's class embedding ``(width,)`` and spatial position table ``(1 + grid**2, width)``."""
    if input_resolution % patch_size:
        raise ValueError(f"input_resolution {input_resolution} is not a multiple of patch_size {patch_size}")
    scale = width**-0.5
    grid = input_resolution // patch_size
    return nn.Parameter(scale * torch.randn(width)), nn.Parameter(scale * torch.randn(grid**2 + 1, width))


def clip_mlp(dim: int, hidden: int, dropout: float = 0.0, proj_dropout: float | None = None) -> nn.Sequential:
    """``c_fc → QuickGELU → dropout → c_proj → dropout`` under the names CLIP checkpoints use.

    ``proj_dropout`` (default: ``dropout``) follows ``c_proj``; dropouts hold no weights, so the
    key layout is the same whatever they are.
    """
    proj_dropout = dropout if proj_dropout is None else proj_dropout
    return nn.Sequential(
        OrderedDict(
            [
                ("c_fc", nn.Linear(dim, hidden)),
                ("gelu", QuickGELU()),
                ("drop1", nn.Dropout(dropout)),
                ("c_proj", nn.Linear(hidden, dim)),
                ("drop2", nn.Dropout(proj_dropout)),
            ]
        )
    )


class ResidualAttentionBlock(nn.Module):
    """Pre-norm CLIP block: ``x + attn(ln_1(x))``, ``x + mlp(ln_2(x))``, with optional drop path."""

    def __init__(
        self, dim: int, num_heads: int, drop_path: float = 0.0, dropout: float = 0.0, causal: bool = False
    ):
        super().__init__()
        self.causal = causal
        self.attn = MultiheadAttention(dim, num_heads, dropout=dropout)
        self.ln_1 = nn.LayerNorm(dim)
        self.mlp = clip_mlp(dim, dim * 4, dropout)
        self.ln_2 = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.ln_1(x), is_causal=self.causal))
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` under the key ``resblocks``.

    The first ``checkpoint_num`` blocks recompute their activations in the backward pass
    (gradient checkpointing) when training.
    """

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        drop_path: float = 0.0,
        dropout: float = 0.0,
        causal: bool = False,
        checkpoint_num: int = 0,
    ):
        super().__init__()
        self.width, self.layers, self.checkpoint_num = width, layers, checkpoint_num
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, drop_path=r, dropout=dropout, causal=causal)
            for r in drop_path_rates(drop_path, layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.resblocks):
            if self.training and i < self.checkpoint_num:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


class CLIPTextEncoder(nn.Module):
    """CLIP's causal text transformer; the feature of the end-of-text token is projected.

    The end-of-text token has the largest id of the vocabulary, so its position is the arg-max of
    each row (the convention of every CLIP tokenizer, padded with 0).
    """

    def __init__(
        self,
        embed_dim: int,
        context_length: int,
        vocab_size: int,
        width: int,
        heads: int,
        layers: int,
        checkpoint_num: int = 0,
        mask_embedding: bool = False,
    ):
        super().__init__()
        self.context_length, self.vocab_size = context_length, vocab_size
        if mask_embedding:
            # The embedding that replaces masked tokens (``encode_text(masked_indices=...)``).
            self.text_mask_embedding = nn.Parameter(0.02 * torch.randn(1, 1, width))
        self.transformer = Transformer(width, layers, heads, causal=True, checkpoint_num=checkpoint_num)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self._init_text_weights()

    def _init_text_weights(self) -> None:
        # CLIP's initialisation (std scaled by width and depth).
        width, layers = self.transformer.width, self.transformer.layers
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=width**-0.5 * (2 * layers) ** -0.5)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=width**-0.5 * (2 * layers) ** -0.5)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    def no_weight_decay(self) -> set[str]:
        return {"token_embedding", "positional_embedding"}

    def encode_text(
        self, text: torch.Tensor, masked_indices: torch.Tensor | None = None, return_all_feats: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``text``: ``(B, L)`` token ids, ``L <= context_length``. Returns ``(B, embed_dim)``.

        ``masked_indices`` (bool ``(B, L)``) replaces those token embeddings with
        ``self.text_mask_embedding`` (built with ``mask_embedding=True``, for masked-language modelling);
        ``return_all_feats`` also returns the normalised token features ``(B, L, width)``.
        """
        if text.ndim != 2 or text.shape[1] > self.context_length:
            raise ValueError(f"text ids must be (B, L<= {self.context_length}), got {tuple(text.shape)}")
        x = self.token_embedding(text)
        if masked_indices is not None:
            x = torch.where(masked_indices[..., None], self.text_mask_embedding.to(x.dtype), x)
        x = x + self.positional_embedding[: text.shape[1]].to(x.dtype)
        x = self.ln_final(self.transformer(x))
        eot = x[torch.arange(x.shape[0], device=x.device), text.argmax(dim=-1)]
        feats = eot @ self.text_projection
        return (feats, x) if return_all_feats else feats

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.encode_text(text)


def inflate_weight(weight_2d: torch.Tensor, time_dim: int, center: bool = True) -> torch.Tensor:
    """Turn a 2D convolution kernel ``(O, I, kH, kW)`` into a 3D one ``(O, I, time_dim, kH, kW)``.

    ``center`` puts the 2D kernel in the middle time slot (zeros elsewhere); otherwise it is
    repeated and divided by ``time_dim``. Either way a static video gives the image's response.
    """
    if center:
        weight_3d = weight_2d.new_zeros(*weight_2d.shape[:2], time_dim, *weight_2d.shape[2:])
        weight_3d[:, :, time_dim // 2] = weight_2d
        return weight_3d
    return weight_2d.unsqueeze(2).repeat(1, 1, time_dim, 1, 1) / time_dim


def resize_class_pos_embed(pos_embed: torch.Tensor, new_grid: int) -> torch.Tensor:
    """Resize a CLIP table ``(1 + g*g, C)`` (class slot first) to ``(1 + new_grid**2, C)`` bicubically."""
    old_grid = round((pos_embed.shape[0] - 1) ** 0.5)
    if old_grid * old_grid + 1 != pos_embed.shape[0]:
        raise ValueError(f"positional_embedding {tuple(pos_embed.shape)} is not 1 + a square grid")
    if old_grid == new_grid:
        return pos_embed
    grid = pos_embed[1:].float().reshape(1, old_grid, old_grid, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(new_grid * new_grid, -1).to(pos_embed.dtype)
    return torch.cat([pos_embed[:1], grid])


def load_clip_visual_weights(
    module: nn.Module, clip_state_dict: Mapping[str, torch.Tensor], center: bool = True
) -> tuple[list[str], list[str]]:
    """Initialise a video tower from an image CLIP visual state dict (``conv1.weight``, ...).

    2D kernels whose 3D counterpart has a time axis are inflated (:func:`inflate_weight`), the
    position table is resized to the tower's grid, and keys the tower lacks (``ln_post``,
    ``proj`` of towers without them) are skipped. Returns ``(missing, unexpected)`` key lists.
    """
    own = module.state_dict()
    state = dict(clip_state_dict)
    for key, value in clip_state_dict.items():
        target = own.get(key)
        if target is None or target.shape == value.shape:
            continue
        if key == "positional_embedding":
            state[key] = resize_class_pos_embed(value, round((target.shape[0] - 1) ** 0.5))
        elif value.ndim == 4 and target.ndim == 5:
            state[key] = inflate_weight(value, target.shape[2], center=center)
        else:
            raise ValueError(
                f"CLIP weight {key}: shape {tuple(value.shape)} cannot become {tuple(target.shape)}"
            )
    result = module.load_state_dict(state, strict=False)
    logger.info("CLIP visual weights: missing %s, unexpected %s", result.missing_keys, result.unexpected_keys)
    return result.missing_keys, result.unexpected_keys
