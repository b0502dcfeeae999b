"""MobileCLIP text encoders (Apple, 2024), the text tower of ``InternVideo2_CLIP_small``.

Only the ``base`` variant exists in the original (``mobileclip_b``: 12 pre-norm layers of width
512, 8 heads, FFN 2048, causal mask, context 77, vocabulary 49408); the ``mct`` variant of the S0-S2
configs raises there and here. The text embedding is the final-LayerNorm state at the position of
the largest token id (CLIP's end-of-text token) times ``projection_layer``. Parameter names are
the released ``text_encoder.*`` keys: ``embedding_layer``, ``positional_embedding.pos_embed.pos_embed``,
``transformer.N.pre_norm_mha.{0,1}``, ``transformer.N.pre_norm_ffn.{0,1,4}``, ``final_layer_norm``,
``projection_layer``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MobileCLIPTextConfig:
    context_length: int = 77
    vocab_size: int = 49408
    dim: int = 512
    ffn_multiplier_per_layer: float = 4.0
    n_heads_per_layer: int = 8
    n_transformer_layers: int = 12
    causal_masking: bool = True
    model_name: str = "base"
    projection_dim: int = 512


MOBILECLIP_TEXT = {"mobileclip_b": MobileCLIPTextConfig()}


class LayerNormFP32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (the original's ``layer_norm_fp32``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class _PosTable(nn.Module):
    def __init__(self, length: int, dim: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, 1, length, dim))
        nn.init.trunc_normal_(self.pos_embed, std=dim**-0.5)


class PositionalEmbedding(nn.Module):
    """Learned ``(1, 1, L, D)`` table, bilinearly resized when a sequence has another length."""

    def __init__(self, length: int, dim: int):
        super().__init__()
        self.pos_embed = _PosTable(length, dim)

    def forward(self, seq_len: int) -> torch.Tensor:
        table = self.pos_embed.pos_embed
        if seq_len != table.shape[2]:
            table = F.interpolate(table, size=(seq_len, table.shape[3]), mode="bilinear")
        return table.reshape(1, seq_len, -1)


class MultiHeadAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv_proj(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class TransformerEncoder(nn.Module):
    """Pre-norm layer: ``x + MHA(LN(x))`` then ``x + FFN(LN(x))`` (exact GELU)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int):
        super().__init__()
        self.pre_norm_mha = nn.Sequential(LayerNormFP32(dim), MultiHeadAttention(dim, heads), nn.Dropout(0.0))
        self.pre_norm_ffn = nn.Sequential(
            LayerNormFP32(dim),
            nn.Linear(dim, ffn_dim),
            nn.GELU(),
            nn.Dropout(0.0),
            nn.Linear(ffn_dim, dim),
            nn.Dropout(0.0),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.pre_norm_mha[1](self.pre_norm_mha[0](x), mask)
        return x + self.pre_norm_ffn(x)


class MobileCLIPTextTransformer(nn.Module):
    def __init__(self, cfg: MobileCLIPTextConfig | None = None):
        super().__init__()
        cfg = cfg or MobileCLIPTextConfig()
        if cfg.model_name != "base":
            raise NotImplementedError(
                f"MobileCLIP text variant {cfg.model_name!r}: only 'base' exists in the original"
            )
        self.cfg = cfg
        ffn_dim = int(math.ceil(cfg.dim * cfg.ffn_multiplier_per_layer / 16.0) * 16)
        self.embedding_layer = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.positional_embedding = PositionalEmbedding(cfg.context_length, cfg.dim)
        self.transformer = nn.ModuleList(
            TransformerEncoder(cfg.dim, cfg.n_heads_per_layer, ffn_dim)
            for _ in range(cfg.n_transformer_layers)
        )
        self.final_layer_norm = LayerNormFP32(cfg.dim)
        self.projection_layer = nn.Parameter(torch.empty(cfg.dim, cfg.projection_dim))
        nn.init.normal_(self.embedding_layer.weight, std=cfg.dim**-0.5)
        nn.init.normal_(self.projection_layer, std=cfg.dim**-0.5)

    def forward(
        self, ids: torch.Tensor, key_padding_mask: torch.Tensor | None = None, return_all_tokens: bool = False
    ):
        """Token ids ``(B, L)`` -> text embeddings ``(B, projection_dim)`` (or all tokens ``(B, L, dim)``).

        ``key_padding_mask`` (True = padding) is used only without causal masking, as the original.
        """
        x = self.embedding_layer(ids) + self.positional_embedding(ids.shape[1]).to(
            self.embedding_layer.weight.dtype
        )
        if self.cfg.causal_masking:
            mask = torch.ones(ids.shape[1], ids.shape[1], dtype=torch.bool, device=ids.device).tril()
        elif key_padding_mask is not None:
            mask = ~key_padding_mask[:, None, None, :]
        else:
            mask = None
        for layer in self.transformer:
            x = layer(x, mask)
        x = self.final_layer_norm(x)
        if return_all_tokens:
            return x
        return x[torch.arange(ids.shape[0], device=ids.device), ids.argmax(dim=-1)] @ self.projection_layer
