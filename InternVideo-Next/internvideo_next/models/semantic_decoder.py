"""The semantic decoder branch: the last layers of ModernBERT-large run over video tokens.

The original takes ``ModernBertForMaskedLM('answerdotai/ModernBERT-large').model`` (text-pretrained,
or randomly initialised with ``with_text_init=False``), keeps the last five of its 28 layers and
feeds them the student's tokens -- visible ones in place, a learned mask token elsewhere -- projected
to 1024-d. Only ``layers`` run; the embeddings and final norm stay in the module (and the checkpoint)
unused. Local layers attend within ModernBERT's sliding window along the token order, global ones
over the whole sequence, with rotary positions ``0..N-1`` per clip.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .local_weights import load_local_pretrained

MODERNBERT_LARGE = {
    "hidden_size": 1024,
    "intermediate_size": 2624,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "global_attn_every_n_layers": 3,
    "local_attention": 128,
    "global_rope_theta": 160000.0,
    "local_rope_theta": 10000.0,
    "vocab_size": 50368,
    "max_position_embeddings": 8192,
    "norm_eps": 1e-5,
    "norm_bias": False,
    "attention_bias": False,
    "mlp_bias": False,
    "hidden_activation": "gelu",
    "pad_token_id": 50283,
    "bos_token_id": 50281,
    "eos_token_id": 50282,
    "cls_token_id": 50281,
    "sep_token_id": 50282,
}


def modernbert_config(**overrides):
    from transformers import ModernBertConfig

    return ModernBertConfig(**{**MODERNBERT_LARGE, **overrides})


def cut_to_last_layers(bert: nn.Module, keep_layers: int = 5) -> nn.Module:
    if not 0 < keep_layers <= len(bert.layers):
        raise ValueError(f"cannot keep {keep_layers} layers of a {len(bert.layers)}-layer ModernBERT")
    bert.layers = bert.layers[-keep_layers:]
    return bert


def build_semantic_decoder(
    path: str | os.PathLike | None = None, keep_layers: int = 5, **overrides
) -> nn.Module:
    """A ``ModernBertModel`` cut to its last ``keep_layers`` layers.

    With ``path``: text-pretrained weights from a local ModernBERT folder (never downloads; every
    weight must come from the checkpoint).
    Without: random weights in ModernBERT-large's shapes (``overrides`` change the config), the
    original's ``with_text_init=False``.
    """
    from transformers import ModernBertModel

    if path is None:
        config = modernbert_config(**overrides)
        config._attn_implementation = "sdpa"
        return cut_to_last_layers(ModernBertModel(config), keep_layers)
    # A released ModernBertForMaskedLM folder: its ``model.*`` weights fill ``ModernBertModel``, the
    # MLM head's are left out (the original keeps ``ModernBertForMaskedLM(...).model`` only).
    bert = load_local_pretrained(ModernBertModel, path, ("modernbert",), "ModernBERT")
    return cut_to_last_layers(bert, keep_layers)


def run_semantic_decoder(bert: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Run the kept layers of ``bert`` over ``hidden`` ``(B, N, width)``."""
    from transformers.masking_utils import create_bidirectional_mask, create_bidirectional_sliding_window_mask

    positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
    common = {"config": bert.config, "inputs_embeds": hidden, "attention_mask": None}
    masks = {
        "full_attention": create_bidirectional_mask(**common),
        "sliding_attention": create_bidirectional_sliding_window_mask(**common),
    }
    rope = {kind: bert.rotary_emb(hidden, positions, kind) for kind in set(bert.config.layer_types)}
    for layer in bert.layers:
        kind = layer.attention_type
        hidden = layer(hidden, attention_mask=masks[kind], position_embeddings=rope[kind])
    return hidden


class MaskTokenDecoding:
    """Mixin for the pretraining models: the semantic decoder over visible tokens and mask tokens.

    Needs ``bert_mask_token``, ``diff_pos_embed``, ``to_bert_proj`` and ``bert_decoder``.
    """

    def semantic_decode(
        self, x: torch.Tensor, mask: torch.Tensor, grid: tuple[int, int, int]
    ) -> torch.Tensor:
        """Decoder features ``(B, T*H*W, width)`` for every patch position (class tokens dropped)."""
        n, b = self.cls_token_num, x.shape[0]
        pos = self.resized(self.diff_pos_embed, grid)
        full = self.bert_mask_token.to(x.dtype).expand(b, mask.shape[1], -1)
        # Visible tokens go back to their positions in order; masked ones keep the mask token.
        full = full.masked_scatter(~mask.unsqueeze(-1), x[:, n:])
        seq = torch.cat([x[:, :n] + pos[:, :n], full + pos[:, n:]], dim=1)
        return run_semantic_decoder(self.bert_decoder, self.to_bert_proj(seq))[:, n:]
