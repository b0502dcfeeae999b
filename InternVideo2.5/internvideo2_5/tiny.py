"""A tiny random-weight checkpoint in the released layout, for tests and offline demos.

The architecture and config keys are the released model's (InternViT + pixel shuffle + HiCo +
MLP projector + an InternLM2 LLM); only widths and depths are small. The tokenizer is a
byte-level BPE without merges (one token per UTF-8 byte, so any text round-trips), with the
InternLM2/InternVL special tokens added and a leading ``<s>`` as InternLM2's tokenizer adds.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from internvideo2_5.configs.released import parse_config
from internvideo2_5.constants import IMG_CONTEXT_TOKEN, IMG_END_TOKEN, IMG_START_TOKEN

SPECIAL_TOKENS = [
    "<unk>",
    "<s>",
    "</s>",
    "<|im_start|>",
    "<|im_end|>",
    IMG_START_TOKEN,
    IMG_END_TOKEN,
    IMG_CONTEXT_TOKEN,
]

TINY_RELEASED_CONFIG: dict[str, Any] = {
    "architectures": ["InternVLChatModel"],
    "model_type": "internvl_chat",
    "template": "internvl2_5",
    "downsample_ratio": 0.5,
    "select_layer": -1,
    "ps_version": "v2",
    "force_image_size": 224,
    "dynamic_image_size": True,
    "max_dynamic_patch": 6,
    "use_thumbnail": True,
    "vision_config": {
        "architectures": ["InternVisionModel"],
        "model_type": "intern_vit_6b",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "image_size": 224,
        "patch_size": 14,
        "qkv_bias": True,
        "qk_normalization": False,
        "norm_type": "layer_norm",
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
        "initializer_factor": 0.1,
        "drop_path_rate": 0.0,
    },
    "llm_config": {
        "architectures": ["InternLM2ForCausalLM"],
        "model_type": "internlm2",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 264,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": 1000000,
        "rope_scaling": {"type": "dynamic", "factor": 2.0},
        "max_position_embeddings": 32768,
        "bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
    },
}


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: ids 0-7 the special tokens, then the 256 byte symbols."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    # alphabet() comes out of a hash set in a new order in every process: sorted, the ids (and so
    # every test's training run) are the same in every process.
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL_TOKENS)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )


def write_tiny_checkpoint(
    path: str | os.PathLike, seed: int = 0, overrides: dict | None = None, max_shard_bytes: int = 200_000
) -> Path:
    """Write config.json, sharded safetensors (released keys) and tokenizer.json to ``path``.

    ``overrides`` updates top-level config keys (e.g. ``{"ps_version": "v1"}``).
    """
    from internvideo2_5.models.loading import build_model, save_released

    released = copy.deepcopy(TINY_RELEASED_CONFIG)
    released.update(overrides or {})
    tokenizer = build_tiny_tokenizer()
    released["llm_config"]["vocab_size"] = len(tokenizer)
    config = parse_config(released, where="tiny config")
    torch.manual_seed(seed)
    model = build_model(config, tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN))
    # Random init leaves LayerScale at 0.1 and biases at 0; perturb all so every weight matters.
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return save_released(model, config, path, tokenizer, max_shard_bytes=max_shard_bytes)
