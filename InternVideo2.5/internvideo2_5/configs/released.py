"""Read the released ``config.json`` (the remote-code ``InternVLChatConfig`` layout).

The released checkpoint's config has a top level with the chat-model settings
(``downsample_ratio``, ``select_layer``, ``template``, ``ps_version``, ``force_image_size``...), a
``vision_config`` for InternViT and an ``llm_config`` whose ``architectures[0]`` names the LLM
(``InternLM2ForCausalLM`` for the 8B model). :func:`read_config` turns it into the configs of the
transformers classes that carry the same maths; the original dictionary is kept so that a
fine-tuned model is saved with the config it was loaded with.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import InternVLVisionConfig, LlamaConfig, PreTrainedConfig, Qwen2Config

from internvideo2_5.constants import DEFAULT_LOCAL_NUM_FRAMES, DEFAULT_NUM_TOME_TOKENS

SUPPORTED_LLMS = ("InternLM2ForCausalLM", "LlamaForCausalLM", "Qwen2ForCausalLM")
# Keys of a released llm_config that name remote code or a CUDA kernel, never maths.
_LLM_KEYS_IGNORED = {"architectures", "auto_map", "attn_implementation", "_attn_implementation", "model_type"}


@dataclass
class ChatModelConfig:
    """Everything needed to build the chat model, derived from one released ``config.json``."""

    vision: InternVLVisionConfig
    llm: PreTrainedConfig
    llm_architecture: str
    downsample_ratio: float = 0.5
    select_layer: int = -1
    template: str = "internvl2_5"
    ps_version: str = "v2"
    local_num_frames: int = DEFAULT_LOCAL_NUM_FRAMES
    num_tome_tokens: int = DEFAULT_NUM_TOME_TOKENS
    released: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return int(self.vision.image_size[0])

    @property
    def tokens_per_frame(self) -> int:
        """Visual tokens each frame (tile) contributes to the prompt after HiCo."""
        return self.num_tome_tokens // self.local_num_frames

    @property
    def tokens_before_merge(self) -> int:
        """Tokens per tile after pixel shuffle, before HiCo."""
        side = self.image_size // int(self.vision.patch_size[0])
        return int(side * self.downsample_ratio) ** 2

    def to_released_dict(self) -> dict[str, Any]:
        """The ``config.json`` contents this config was read from."""
        return copy.deepcopy(self.released)


def _require(mapping: dict, key: str, where: str) -> Any:
    if key not in mapping:
        raise KeyError(f"{where}: missing key {key!r}")
    return mapping[key]


def _vision_config(raw: dict, image_size: int, where: str) -> InternVLVisionConfig:
    where = f"{where} vision_config"
    eps = float(raw.get("layer_norm_eps", 1e-6))
    qk_norm = bool(raw.get("qk_normalization", False))
    if qk_norm and eps != 1e-6:
        # transformers' InternVL vision attention builds its q/k RMSNorm with eps 1e-6.
        raise ValueError(f"{where}: qk_normalization with layer_norm_eps={eps} is not supported (needs 1e-6)")
    norm_type = raw.get("norm_type", "rms_norm")
    if norm_type not in ("layer_norm", "rms_norm"):
        raise ValueError(f"{where}: unknown norm_type {norm_type!r}")
    return InternVLVisionConfig(
        hidden_size=int(_require(raw, "hidden_size", where)),
        num_hidden_layers=int(_require(raw, "num_hidden_layers", where)),
        num_attention_heads=int(_require(raw, "num_attention_heads", where)),
        intermediate_size=int(_require(raw, "intermediate_size", where)),
        hidden_act=raw.get("hidden_act", "gelu"),
        layer_norm_eps=eps,
        norm_type=norm_type,
        image_size=image_size,
        patch_size=int(_require(raw, "patch_size", where)),
        num_channels=int(raw.get("num_channels", 3)),
        attention_bias=bool(raw.get("qkv_bias", False)),
        use_qk_norm=qk_norm,
        attention_dropout=float(raw.get("attention_dropout", 0.0)),
        projection_dropout=float(raw.get("dropout", 0.0)),
        layer_scale_init_value=float(raw.get("initializer_factor", 1.0)),
        use_mean_pooling=True,  # InternViT has no final norm; this makes transformers skip it too
    )


def _rope_parameters(raw: dict) -> dict[str, Any]:
    theta = float(raw.get("rope_theta", 10000.0))
    scaling = raw.get("rope_scaling")
    if not scaling:
        return {"rope_type": "default", "rope_theta": theta}
    kind = scaling.get("type", scaling.get("rope_type"))
    if kind not in ("dynamic", "linear"):
        raise ValueError(f"llm_config rope_scaling type {kind!r} is not supported (dynamic or linear)")
    return {"rope_type": kind, "factor": float(scaling["factor"]), "rope_theta": theta}


def internlm2_to_llama_config(raw: dict, where: str = "llm_config") -> LlamaConfig:
    """A LlamaConfig with InternLM2's maths: same norms, SiLU-gated MLP, GQA and rotary embedding.

    InternLM2's ``bias`` switches the bias of both ``wqkv`` and ``wo``, which is Llama's
    ``attention_bias``; its MLP has no bias.
    """
    heads = int(_require(raw, "num_attention_heads", where))
    return LlamaConfig(
        vocab_size=int(_require(raw, "vocab_size", where)),
        hidden_size=int(_require(raw, "hidden_size", where)),
        intermediate_size=int(_require(raw, "intermediate_size", where)),
        num_hidden_layers=int(_require(raw, "num_hidden_layers", where)),
        num_attention_heads=heads,
        num_key_value_heads=int(raw.get("num_key_value_heads") or heads),
        hidden_act=raw.get("hidden_act", "silu"),
        max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        attention_bias=bool(raw.get("bias", False)),
        mlp_bias=False,
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        rope_parameters=_rope_parameters(raw),
        bos_token_id=raw.get("bos_token_id", 1),
        eos_token_id=raw.get("eos_token_id", 2),
        pad_token_id=raw.get("pad_token_id"),
    )


def _llm_config(raw: dict, where: str) -> tuple[PreTrainedConfig, str]:
    where = f"{where} llm_config"
    archs = raw.get("architectures") or []
    arch = archs[0] if archs else None
    if arch not in SUPPORTED_LLMS:
        raise ValueError(
            f"{where}: architectures[0]={arch!r} is not supported; expected one of {SUPPORTED_LLMS}"
        )
    if arch == "InternLM2ForCausalLM":
        return internlm2_to_llama_config(raw, where), arch
    kwargs = {k: v for k, v in raw.items() if k not in _LLM_KEYS_IGNORED}
    if kwargs.get("rope_scaling"):
        kwargs["rope_parameters"] = _rope_parameters(kwargs.pop("rope_scaling"))
    cls = LlamaConfig if arch == "LlamaForCausalLM" else Qwen2Config
    return cls(**kwargs), arch


def parse_config(released: dict[str, Any], where: str = "config.json") -> ChatModelConfig:
    """Build a :class:`ChatModelConfig` from the released config dictionary."""
    vision_raw = _require(released, "vision_config", where)
    llm_raw = _require(released, "llm_config", where)
    image_size = int(
        released.get("force_image_size") or _require(vision_raw, "image_size", f"{where} vision_config")
    )
    llm, arch = _llm_config(llm_raw, where)
    config = ChatModelConfig(
        vision=_vision_config(vision_raw, image_size, where),
        llm=llm,
        llm_architecture=arch,
        downsample_ratio=float(released.get("downsample_ratio", 0.5)),
        select_layer=int(released.get("select_layer", -1)),
        template=released.get("template") or "internvl2_5",
        ps_version=released.get("ps_version", "v1"),
        local_num_frames=int(released.get("local_num_frames", DEFAULT_LOCAL_NUM_FRAMES)),
        num_tome_tokens=int(released.get("num_tome_tokens", DEFAULT_NUM_TOME_TOKENS)),
        released=copy.deepcopy(released),
    )
    _validate(config, where)
    return config


def _validate(config: ChatModelConfig, where: str) -> None:
    if config.ps_version not in ("v1", "v2"):
        raise ValueError(f"{where}: ps_version must be 'v1' or 'v2', got {config.ps_version!r}")
    side = config.image_size // int(config.vision.patch_size[0])
    if (side * config.downsample_ratio) % 1 or side * config.downsample_ratio < 1:
        raise ValueError(
            f"{where}: downsample_ratio={config.downsample_ratio} does not divide the {side}x{side} patch grid"
        )
    if config.num_tome_tokens % config.local_num_frames:
        raise ValueError(
            f"{where}: num_tome_tokens={config.num_tome_tokens} is not a multiple of "
            f"local_num_frames={config.local_num_frames}"
        )
    group_tokens = config.tokens_before_merge * config.local_num_frames
    if not 0 < config.num_tome_tokens <= group_tokens:
        raise ValueError(
            f"{where}: num_tome_tokens={config.num_tome_tokens} must be in [1, {group_tokens}] "
            f"({config.local_num_frames} frames x {config.tokens_before_merge} tokens)"
        )
    merged_width = config.vision.hidden_size * int(round(1 / config.downsample_ratio)) ** 2
    heads = config.llm.num_attention_heads
    if merged_width % heads:
        raise ValueError(
            f"{where}: the HiCo similarity splits the {merged_width}-wide visual tokens into "
            f"llm_config.num_attention_heads={heads} parts, which does not divide them"
        )


def read_config(path: str | os.PathLike) -> ChatModelConfig:
    """Read ``config.json`` from a checkpoint directory (or the file itself)."""
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no config.json at {file}")
    try:
        released = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: not valid JSON ({exc})") from exc
    return parse_config(released, where=str(file))
