"""BEATs audio encoder (Chen et al. 2022), as the InternVideo2-6B audio-visual model uses it.

Input: log-mel fbanks ``(B, frames, mel)`` from :func:`internvideo2.mm.audio.beats_input`;
output: ``(B, N, encoder_embed_dim)`` tokens, ``N = (frames // 16) * (mel // 16)``. The maths is the
released encoder's: 16x16 patch convolution, LayerNorm, projection, a weight-normalised grouped
convolutional position embedding, and post-LN (optionally DeepNorm) Transformer layers whose
attention adds a T5-style bucketed relative position bias, shared by all layers and gated per
layer from the query (``gru_rel_pos``). Parameter names equal the released checkpoints' keys
(``encoder.pos_conv.0.weight_g`` / ``weight_v`` included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class BEATsConfig:
    """The released ``cfg`` dictionary's fields (unknown keys are ignored by :meth:`from_dict`)."""

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = True
    dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    dropout_input: float = 0.0
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    finetuned_model: bool = False
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, cfg: dict) -> BEATsConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in names})


def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> torch.Tensor:
    """``(L, L)`` bidirectional T5 buckets of ``key - query`` offsets (exact below a quarter of the
    buckets, log-spaced up to ``max_distance`` beyond)."""
    offset = torch.arange(length)[None, :] - torch.arange(length)[:, None]
    half = num_buckets // 2
    buckets = (offset > 0).long() * half
    distance = offset.abs()
    exact = half // 2
    far = (
        exact
        + (
            torch.log(distance.float().clamp_min(1) / exact) / math.log(max_distance / exact) * (half - exact)
        ).long()
    )
    far = far.clamp_max(half - 1)
    return buckets + torch.where(distance < exact, distance, far)


class PosConv(nn.Module):
    """Grouped Conv1d with weight normalisation over all but the kernel axis (keys weight_g/weight_v)."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.kernel, self.groups = kernel, groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(dim, dim // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.weight_v.flatten(0, 1).norm(dim=0).view(1, 1, -1)
        weight = self.weight_v * (self.weight_g / norm)
        out = F.conv1d(x, weight, self.bias, padding=self.kernel // 2, groups=self.groups)
        return out[:, :, :-1] if self.kernel % 2 == 0 else out  # "same" length for even kernels


class BEATsAttention(nn.Module):
    def __init__(self, cfg: BEATsConfig, with_bias_table: bool):
        super().__init__()
        dim, heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.num_heads, self.head_dim = heads, dim // heads
        self.dropout = cfg.attention_dropout
        self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.q_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        if with_bias_table:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, heads)
        self.gru_rel_pos = cfg.gru_rel_pos
        if cfg.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (
            p(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        bias = None
        if position_bias is not None:
            bias = position_bias[None]
            if self.gru_rel_pos:
                gates = torch.sigmoid(self.grep_linear(q).view(b, self.num_heads, n, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias
            bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class BEATsLayer(nn.Module):
    def __init__(self, cfg: BEATsConfig, with_bias_table: bool):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.self_attn = BEATsAttention(cfg, with_bias_table)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = (
            nn.Linear(dim, cfg.encoder_ffn_embed_dim),
            nn.Linear(cfg.encoder_ffn_embed_dim, dim),
        )
        self.final_layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = cfg.layer_norm_first
        self.alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0
        self.dropout, self.act_dropout = nn.Dropout(cfg.dropout), nn.Dropout(cfg.activation_dropout)
        self.activation = {"gelu": F.gelu, "relu": F.relu}[cfg.activation_fn]

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.act_dropout(self.activation(self.fc1(x)))))

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor | None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), position_bias))
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x * self.alpha + self.dropout(self.self_attn(x, position_bias)))
        return self.final_layer_norm(x * self.alpha + self._ffn(x))


class BEATsEncoder(nn.Module):
    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        self.cfg = cfg
        self.pos_conv = nn.Sequential(
            PosConv(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups), nn.GELU()
        )
        rel = cfg.relative_position_embedding
        self.layers = nn.ModuleList(BEATsLayer(cfg, with_bias_table=rel) for _ in range(cfg.encoder_layers))
        if rel:
            # One bias table shared by every layer, saved under each layer's name as the original.
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(cfg.encoder_embed_dim)
        self.dropout = nn.Dropout(cfg.dropout)

    def position_bias(self, length: int) -> torch.Tensor | None:
        if not self.cfg.relative_position_embedding:
            return None
        table = self.layers[0].self_attn.relative_attention_bias
        buckets = relative_position_buckets(length, self.cfg.num_buckets, self.cfg.max_distance)
        return table(buckets.to(table.weight.device)).permute(2, 0, 1)  # (heads, L, L)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2).to(x.dtype)
        if not self.cfg.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        bias = self.position_bias(x.shape[1])
        for layer in self.layers:
            x = layer(x, bias)
        return self.layer_norm(x) if self.cfg.layer_norm_first else x


class BEATs(nn.Module):
    def __init__(self, cfg: BEATsConfig | None = None):
        super().__init__()
        cfg = cfg or BEATsConfig()
        self.cfg = cfg
        self.patch_embedding = nn.Conv2d(
            1, cfg.embed_dim, cfg.input_patch_size, stride=cfg.input_patch_size, bias=cfg.conv_bias
        )
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.post_extract_proj = (
            nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim)
            if cfg.embed_dim != cfg.encoder_embed_dim
            else None
        )
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        self.encoder = BEATsEncoder(cfg)
        if cfg.finetuned_model:
            self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class)
        self.init_weights()

    def init_weights(self) -> None:
        """fairseq's BERT initialisation (normal 0.02) and the position convolution's own."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        conv = self.encoder.pos_conv[0]
        std = math.sqrt(4.0 / (self.cfg.conv_pos * self.cfg.encoder_embed_dim))
        nn.init.normal_(conv.weight_v, std=std)
        with torch.no_grad():
            conv.weight_g.copy_(conv.weight_v.flatten(0, 1).norm(dim=0).view(1, 1, -1))

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        """``(B, frames, mel)`` fbank -> ``(B, N, encoder_embed_dim)`` tokens."""
        if fbank.dim() != 3:
            raise ValueError(f"expected fbank (B, frames, mel), got shape {tuple(fbank.shape)}")
        x = self.patch_embedding(fbank.unsqueeze(1)).flatten(2).transpose(1, 2)
        x = self.layer_norm(x)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(self.dropout_input(x))
