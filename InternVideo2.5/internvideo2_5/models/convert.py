"""Explicit key mapping between the released checkpoint layout and the transformers model.

Released layout (the remote-code ``InternVLChatModel``)::

    vision_model.embeddings.{class_embedding, position_embedding, patch_embedding.*}
    vision_model.encoder.layers.{i}.{attn.qkv, attn.proj, attn.q_norm, attn.k_norm, mlp.fc1, mlp.fc2, norm1, norm2, ls1, ls2}
    mlp1.{0 (LayerNorm), 1 (Linear), 3 (Linear)}
    language_model.model.{tok_embeddings, layers.{i}.{attention.wqkv, attention.wo, feed_forward.w1/w2/w3,
        attention_norm, ffn_norm}, norm}, language_model.output          (InternLM2)
    language_model.model.*, language_model.lm_head                       (Llama / Qwen2)

Two tensors are fused in the release and split here: InternViT's ``qkv`` (rows ``[q; k; v]``)
and InternLM2's ``wqkv``, whose rows are grouped per key/value head as
``(kv_heads, q_per_kv + 2, head_dim)``: the group's query heads, then its key, then its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from internvideo2_5.configs.released import ChatModelConfig

StateDict = dict[str, torch.Tensor]

_VISION_RULES = [
    ("vision_model.embeddings.class_embedding", "model.vision_tower.embeddings.cls_token"),
    ("vision_model.embeddings.position_embedding", "model.vision_tower.embeddings.position_embeddings"),
    (
        "vision_model.embeddings.patch_embedding.",
        "model.vision_tower.embeddings.patch_embeddings.projection.",
    ),
    (
        "vision_model.encoder.layers.{i}.attn.proj.",
        "model.vision_tower.encoder.layer.{i}.attention.projection_layer.",
    ),
    (
        "vision_model.encoder.layers.{i}.attn.q_norm.",
        "model.vision_tower.encoder.layer.{i}.attention.q_norm.",
    ),
    (
        "vision_model.encoder.layers.{i}.attn.k_norm.",
        "model.vision_tower.encoder.layer.{i}.attention.k_norm.",
    ),
    ("vision_model.encoder.layers.{i}.mlp.", "model.vision_tower.encoder.layer.{i}.mlp."),
    ("vision_model.encoder.layers.{i}.norm1.", "model.vision_tower.encoder.layer.{i}.layernorm_before."),
    ("vision_model.encoder.layers.{i}.norm2.", "model.vision_tower.encoder.layer.{i}.layernorm_after."),
    ("vision_model.encoder.layers.{i}.ls1", "model.vision_tower.encoder.layer.{i}.lambda_1"),
    ("vision_model.encoder.layers.{i}.ls2", "model.vision_tower.encoder.layer.{i}.lambda_2"),
    ("mlp1.0.", "model.multi_modal_projector.layer_norm."),
    ("mlp1.1.", "model.multi_modal_projector.linear_1."),
    ("mlp1.3.", "model.multi_modal_projector.linear_2."),
]
_INTERNLM2_RULES = [
    ("language_model.model.tok_embeddings.", "model.language_model.embed_tokens."),
    ("language_model.model.layers.{i}.attention.wo.", "model.language_model.layers.{i}.self_attn.o_proj."),
    ("language_model.model.layers.{i}.feed_forward.w1.", "model.language_model.layers.{i}.mlp.gate_proj."),
    ("language_model.model.layers.{i}.feed_forward.w3.", "model.language_model.layers.{i}.mlp.up_proj."),
    ("language_model.model.layers.{i}.feed_forward.w2.", "model.language_model.layers.{i}.mlp.down_proj."),
    ("language_model.model.layers.{i}.attention_norm.", "model.language_model.layers.{i}.input_layernorm."),
    (
        "language_model.model.layers.{i}.ffn_norm.",
        "model.language_model.layers.{i}.post_attention_layernorm.",
    ),
    ("language_model.model.norm.", "model.language_model.norm."),
    ("language_model.output.", "lm_head."),
]
_HF_LLM_RULES = [
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
]

_VISION_QKV = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.attn\.qkv\.(weight|bias)$")
_LLM_WQKV = re.compile(r"^language_model\.model\.layers\.(\d+)\.attention\.wqkv\.(weight|bias)$")
_HF_VISION_QKV = re.compile(
    r"^model\.vision_tower\.encoder\.layer\.(\d+)\.attention\.([qkv])_proj\.(weight|bias)$"
)
_HF_LLM_QKV = re.compile(r"^model\.language_model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$")


def _compile(rules: list[tuple[str, str]], reverse: bool) -> list[tuple[re.Pattern, str]]:
    """Prefix rules with an ``{i}`` layer slot as anchored regexes and their replacements."""
    out = []
    for released, hf in rules:
        src, dst = (hf, released) if reverse else (released, hf)
        pattern = re.escape(src).replace(re.escape("{i}"), r"(?P<i>\d+)")
        out.append((re.compile("^" + pattern), dst.replace("{i}", r"\g<i>")))
    return out


def _rules(config: ChatModelConfig) -> list[tuple[str, str]]:
    llm = _INTERNLM2_RULES if config.llm_architecture == "InternLM2ForCausalLM" else _HF_LLM_RULES
    return _VISION_RULES + llm


def _rename(key: str, compiled: list[tuple[re.Pattern, str]], where: str) -> str:
    for pattern, replacement in compiled:
        if pattern.match(key):
            return pattern.sub(replacement, key, count=1)
    raise KeyError(f"{where}: unexpected key {key!r} (no mapping to the model)")


def _llm_head_layout(config: ChatModelConfig) -> tuple[int, int, int]:
    llm = config.llm
    heads = llm.num_attention_heads
    kv_heads = llm.num_key_value_heads or heads
    head_dim = getattr(llm, "head_dim", None) or llm.hidden_size // heads
    return kv_heads, heads // kv_heads, head_dim


def _split_wqkv(
    tensor: torch.Tensor, config: ChatModelConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    kv_heads, groups, head_dim = _llm_head_layout(config)
    grouped = tensor.reshape(kv_heads, groups + 2, head_dim, *tensor.shape[1:])
    q = grouped[:, :groups].reshape(kv_heads * groups * head_dim, *tensor.shape[1:])
    k = grouped[:, groups].reshape(kv_heads * head_dim, *tensor.shape[1:])
    v = grouped[:, groups + 1].reshape(kv_heads * head_dim, *tensor.shape[1:])
    return q, k, v


def _fuse_wqkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, config: ChatModelConfig) -> torch.Tensor:
    kv_heads, groups, head_dim = _llm_head_layout(config)
    rest = q.shape[1:]
    grouped = torch.cat(
        [
            q.reshape(kv_heads, groups, head_dim, *rest),
            k.reshape(kv_heads, 1, head_dim, *rest),
            v.reshape(kv_heads, 1, head_dim, *rest),
        ],
        dim=1,
    )
    return grouped.reshape(kv_heads * (groups + 2) * head_dim, *rest)


def released_to_hf(
    state_dict: Mapping[str, torch.Tensor], config: ChatModelConfig, where: str = "checkpoint"
) -> StateDict:
    """Rename and split a released state dict into :class:`InternVideo2_5ForConditionalGeneration` keys."""
    compiled = _compile(_rules(config), reverse=False)
    out: StateDict = {}
    for key, tensor in state_dict.items():
        if m := _VISION_QKV.match(key):
            layer, kind = m.groups()
            for name, part in zip("qkv", tensor.chunk(3, dim=0)):
                out[f"model.vision_tower.encoder.layer.{layer}.attention.{name}_proj.{kind}"] = part
        elif m := _LLM_WQKV.match(key):
            if config.llm_architecture != "InternLM2ForCausalLM":
                raise KeyError(
                    f"{where}: key {key!r} is InternLM2's but llm_config names {config.llm_architecture}"
                )
            layer, kind = m.groups()
            for name, part in zip("qkv", _split_wqkv(tensor, config)):
                out[f"model.language_model.layers.{layer}.self_attn.{name}_proj.{kind}"] = part
        else:
            out[_rename(key, compiled, where)] = tensor
    return out


def hf_to_released(state_dict: Mapping[str, torch.Tensor], config: ChatModelConfig) -> StateDict:
    """The inverse of :func:`released_to_hf`: the model's state dict in the released layout."""
    compiled = _compile(_rules(config), reverse=True)
    internlm2 = config.llm_architecture == "InternLM2ForCausalLM"
    fused: dict[tuple[str, str, str], dict[str, torch.Tensor]] = {}
    out: StateDict = {}
    for key, tensor in state_dict.items():
        if m := _HF_VISION_QKV.match(key):
            layer, name, kind = m.groups()
            fused.setdefault(("vision", layer, kind), {})[name] = tensor
        elif internlm2 and (m := _HF_LLM_QKV.match(key)):
            layer, name, kind = m.groups()
            fused.setdefault(("llm", layer, kind), {})[name] = tensor
        elif internlm2 and key == "lm_head.weight" and config.llm.tie_word_embeddings:
            continue
        else:
            out[_rename(key, compiled, "model state dict")] = tensor
    for (part, layer, kind), qkv in fused.items():
        if part == "vision":
            out[f"vision_model.encoder.layers.{layer}.attn.qkv.{kind}"] = torch.cat(
                [qkv["q"], qkv["k"], qkv["v"]]
            )
        else:
            out[f"language_model.model.layers.{layer}.attention.wqkv.{kind}"] = _fuse_wqkv(
                qkv["q"], qkv["k"], qkv["v"], config
            )
    return out
