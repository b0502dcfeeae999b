"""Load and save the chat model in the released directory layout.

A released directory holds ``config.json`` (the ``InternVLChatConfig`` layout, read by
:mod:`internvideo2_5.configs.released`), safetensors shards with ``model.safetensors.index.json``
(or a single ``model.safetensors``) in the released key layout, and the tokenizer files.
Loading maps the keys explicitly (:mod:`.convert`) and fails on any missing or unexpected key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from internvideo2_5.configs.released import ChatModelConfig, read_config
from internvideo2_5.constants import IMG_CONTEXT_TOKEN, IMG_END_TOKEN, IMG_START_TOKEN
from internvideo2_5.conversation import get_template
from internvideo2_5.models.convert import hf_to_released, released_to_hf
from internvideo2_5.models.internvideo2_5 import InternVideo2_5ForConditionalGeneration, build_hf_config
from internvideo2_5.tokenizer import load_sentencepiece_tokenizer
from ivtools.checkpoint import load_state_dict_file, save_state_dict_file

INDEX_NAME = "model.safetensors.index.json"


def load_tokenizer(path: str | os.PathLike, template: str = "internvl2_5") -> PreTrainedTokenizerBase:
    """The tokenizer of a checkpoint directory; it must know the image and turn-separator tokens."""
    path = Path(path)
    if (path / "tokenizer.json").is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    elif (path / "tokenizer.model").is_file():
        tokenizer = load_sentencepiece_tokenizer(path)
    else:
        raise FileNotFoundError(f"{path}: neither tokenizer.json nor a sentencepiece tokenizer.model")
    needed = [IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN, get_template(template).stop_token]
    vocab = tokenizer.get_vocab()
    missing = [t for t in needed if t not in vocab]
    if missing:
        raise KeyError(f"{path}: the tokenizer lacks the special tokens {missing}")
    return tokenizer


def build_model(config: ChatModelConfig, image_token_id: int) -> InternVideo2_5ForConditionalGeneration:
    """A randomly initialised model for ``config`` (use :func:`load_pretrained` for weights)."""
    return InternVideo2_5ForConditionalGeneration(build_hf_config(config, image_token_id))


def _check_keys(model: torch.nn.Module, state_dict: dict, where: str) -> None:
    expected = set(model.state_dict())
    missing = sorted(expected - set(state_dict))
    unexpected = sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise KeyError(
            f"{where}: {len(missing)} missing keys (first: {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (first: {unexpected[:3]})"
        )
    for key, tensor in model.state_dict().items():
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{where}: {key} has shape {tuple(state_dict[key].shape)}, the model expects {tuple(tensor.shape)}"
            )


def _rebuild_meta_modules(model: torch.nn.Module) -> None:
    """Re-create modules whose non-persistent buffers (rotary frequencies) are still on the meta device."""
    for name, module in list(model.named_modules()):
        if any(b.is_meta for b in module.buffers(recurse=False)):
            parent_name, _, child = name.rpartition(".")
            with torch.device("cpu"):
                model.get_submodule(parent_name).__setattr__(child, type(module)(module.config))


def load_pretrained(
    path: str | os.PathLike, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[InternVideo2_5ForConditionalGeneration, PreTrainedTokenizerBase, ChatModelConfig]:
    """Model, tokenizer and config from a released-layout directory, loaded strictly."""
    path = Path(path)
    config = read_config(path)
    tokenizer = load_tokenizer(path, config.template)
    with torch.device("meta"):
        model = build_model(config, tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN))
    state_dict = released_to_hf(load_state_dict_file(path), config, where=str(path))
    if config.llm.tie_word_embeddings and "lm_head.weight" not in state_dict:
        state_dict["lm_head.weight"] = state_dict["model.language_model.embed_tokens.weight"]
    _check_keys(model, state_dict, str(path))
    model.load_state_dict(state_dict, strict=True, assign=True)
    if config.llm.tie_word_embeddings:
        model.tie_weights()
    _rebuild_meta_modules(model)
    return model.to(device=device, dtype=dtype).eval(), tokenizer, config


def save_released(
    model: InternVideo2_5ForConditionalGeneration,
    config: ChatModelConfig,
    path: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | None = None,
    max_shard_bytes: int = 5 * 1024**3,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``config.json``, safetensors shards + index in the released key layout, and the tokenizer.

    ``state_dict`` (transformers keys) replaces ``model.state_dict()``, e.g. weights with LoRA merged.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    released = hf_to_released(model.state_dict() if state_dict is None else state_dict, config)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in released.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_state_dict_file(shard, path / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in released.values())
    (path / INDEX_NAME).write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )
    (path / "config.json").write_text(json.dumps(config.to_released_dict(), indent=2, ensure_ascii=False))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(path))
    return path
