"""Models, tokenizers and checkpoints from a multi-modality config (see :mod:`.config`).

The ``model`` section follows the original's:

* ``vision_encoder``: ``name`` (``pretrain_internvideo2_{1b,6b}_patch14_224``), ``d_model``,
  ``clip_embed_dim``, ``num_frames``, ``video_mask_ratio``/``image_mask_ratio``, and ``arch``: extra
  keyword arguments of ``InternVideo2Stage2Vision`` (for instance a whole small architecture);
* ``text_encoder``: ``pretrained`` (a local Hugging Face BERT folder: tokenizer, and weights when
  ``load_text_weights``), ``config`` (a BERT ``config.json``, relative to the config root),
  ``d_model``, ``fusion_layer``;
* ``multimodal.enable``, ``embed_dim``, ``temp``, ``freeze_vision``/``freeze_text``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from internvideo2.mm.config import ConfigError, optional, require
from internvideo2.models.internvideo2_stage2 import (
    AudioVisualLossConfig,
    InternVideo2_Stage2,
    InternVideo2_Stage2_audiovisual,
    Stage2LossConfig,
    TokenIds,
)
from internvideo2.models.text_bert import build_text_encoder, load_pretrained_bert, med_bert_config

logger = logging.getLogger(__name__)

VISION_SIZES = {
    "pretrain_internvideo2_1b_patch14_224": "1B",
    "pretrain_internvideo2_6b_patch14_224": "6B",
}
STAGE2_CLASSES = ("InternVideo2_Stage2", "InternVideo2_Stage2_visual", "InternVideo2_Stage2_audiovisual")
CLIP_CLASSES = ("InternVideo2_CLIP", "InternVideo2_CLIP_small")


def resolve_path(cfg: DictConfig, path: str) -> Path:
    """``path`` as written, or relative to the config's ``config_root`` when it is not absolute."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    root = optional(cfg, "config_root")
    return Path(root) / p if root else p


def build_tokenizer(cfg: DictConfig):
    """The text tokenizer from a local folder (never downloads): ``model.text_encoder.tokenizer_path``
    if set (CLIP models: CLIP BPE or LLaMA), else the BERT folder ``model.text_encoder.pretrained``."""
    from transformers import AutoTokenizer

    key = "model.text_encoder.tokenizer_path"
    if optional(cfg, key) is None:
        key = "model.text_encoder.pretrained"
    folder = resolve_path(cfg, require(cfg, key))
    if not folder.is_dir():
        raise FileNotFoundError(f"tokenizer folder {folder} ({key}) does not exist")
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def build_vision_encoder(cfg: DictConfig) -> torch.nn.Module:
    from internvideo2.models.pretrain import InternVideo2Stage2Vision, stage2_vision_encoder

    name = require(cfg, "model.vision_encoder.name")
    arch = OmegaConf.to_container(optional(cfg, "model.vision_encoder.arch", {}) or {}, resolve=True)
    arch.setdefault("num_frames", require(cfg, "model.vision_encoder.num_frames"))
    if name == "custom":
        return InternVideo2Stage2Vision(**arch)
    if name not in VISION_SIZES:
        raise ConfigError(
            f"model.vision_encoder.name={name!r} is not one of {sorted(VISION_SIZES)} or 'custom'"
        )
    return stage2_vision_encoder(VISION_SIZES[name], **arch)


def build_model(cfg: DictConfig, tokenizer, is_pretrain: bool = True) -> torch.nn.Module:
    """The ``model.model_cls`` model (random weights; see :func:`load_checkpoint`)."""
    model_cls = require(cfg, "model.model_cls")
    if model_cls in STAGE2_CLASSES:
        return build_stage2_model(cfg, tokenizer, is_pretrain)
    if model_cls in CLIP_CLASSES:
        return build_clip_model(cfg, tokenizer)
    raise ConfigError(f"model.model_cls={model_cls!r} is not one of {sorted(STAGE2_CLASSES + CLIP_CLASSES)}")


def build_clip_model(cfg: DictConfig, tokenizer) -> torch.nn.Module:
    """``InternVideo2_CLIP`` (LLaMA text tower from ``model.text_encoder.llama_path``'s config.json) or
    ``InternVideo2_CLIP_small`` (MobileCLIP ``model.text_encoder.name``, fields overridable by ``arch``)."""
    import timm

    from internvideo2.models import internvideo2_clip as clip

    vision_cfg = require(cfg, "model.vision_encoder")
    arch = OmegaConf.to_container(vision_cfg.get("arch", {}) or {}, resolve=True)
    name = require(cfg, "model.vision_encoder.name")
    vision = clip.InternVideo2CLIPVision(**arch) if name == "custom" else timm.create_model(name, **arch)
    text_cfg = require(cfg, "model.text_encoder")
    common = {
        "temp": float(require(cfg, "model.temp")),
        "temp_min": float(optional(cfg, "model.temp_min", 0.01)),
        "freeze_vision": bool(optional(cfg, "model.freeze_vision", True)),
        "open_vision_clip_projector": bool(optional(cfg, "model.open_vision_clip_projector", True)),
        "freeze_text": bool(optional(cfg, "model.freeze_text", True)),
        "open_text_projection": bool(optional(cfg, "model.open_text_projection", False)),
    }
    if require(cfg, "model.model_cls") == "InternVideo2_CLIP_small":
        overrides = OmegaConf.to_container(text_cfg.get("arch", {}) or {}, resolve=True)
        text = clip.mobileclip_text(require(cfg, "model.text_encoder.name"), **overrides)
        return clip.InternVideo2_CLIP_small(
            vision, text, align_dim=int(require(cfg, "model.vision_encoder.align_dim")), **common
        )
    from transformers import LlamaConfig

    llama_dir = resolve_path(cfg, require(cfg, "model.text_encoder.llama_path"))
    llama_config = LlamaConfig.from_pretrained(str(llama_dir), local_files_only=True)
    text = clip.LlamaTextEncoder(
        llama_config, vision.clip_embed_dim, use_lora=bool(optional(cfg, "model.text_encoder.use_lora", True))
    )
    return clip.InternVideo2_CLIP(
        vision, text, open_text_lora=bool(optional(cfg, "model.open_text_lora", False)), **common
    )


def build_audio_encoder(cfg: DictConfig) -> torch.nn.Module:
    """BEATs from ``model.audio_encoder.audio_model_path`` (the released ``{'cfg', 'model'}`` file,
    weights included) or, without it, random weights with ``model.audio_encoder.arch`` settings."""
    from internvideo2.models.beats import BEATs, BEATsConfig

    path = optional(cfg, "model.audio_encoder.audio_model_path", "")
    if path:
        from ivtools.checkpoint import load_state_dict_file

        released = load_state_dict_file(resolve_path(cfg, path))
        if not isinstance(released, dict) or not {"cfg", "model"} <= set(released):
            raise ValueError(f"{path}: expected a BEATs checkpoint with 'cfg' and 'model' entries")
        model = BEATs(BEATsConfig.from_dict(released["cfg"]))
        model.load_state_dict(released["model"], strict=True)
        return model
    arch = OmegaConf.to_container(optional(cfg, "model.audio_encoder.arch", {}) or {}, resolve=True)
    return BEATs(BEATsConfig(**arch))


def build_stage2_model(cfg: DictConfig, tokenizer, is_pretrain: bool = True) -> InternVideo2_Stage2:
    """``InternVideo2_Stage2`` (or its audio-visual variant) as ``cfg.model`` describes it (random
    weights except what ``load_text_weights`` / ``audio_model_path`` name; see :func:`load_checkpoint`)."""
    vision = build_vision_encoder(cfg)
    audiovisual = require(cfg, "model.model_cls") == "InternVideo2_Stage2_audiovisual"
    # The fusion layers attend to the vision tokens, or to the audio-visual concat projection.
    width = int(require(cfg, "model.av_concat_dim")) if audiovisual else vision.embed_dim
    text_cfg = require(cfg, "model.text_encoder")
    num_layers_cfg = resolve_path(cfg, require(cfg, "model.text_encoder.config"))
    fusion_layer = require(cfg, "model.text_encoder.fusion_layer")
    bert_config = med_bert_config(fusion_layer, width, num_layers_cfg, vocab_size=len(tokenizer))
    if not optional(cfg, "model.multimodal.enable", True):
        bert_config.fusion_layer = bert_config.num_hidden_layers
    if bert_config.hidden_size != require(cfg, "model.text_encoder.d_model"):
        raise ConfigError(
            f"model.text_encoder.d_model={text_cfg.d_model} but {num_layers_cfg} has hidden_size {bert_config.hidden_size}"
        )
    weights = optional(cfg, "criterion.loss_weight", {}) or {}
    loss = Stage2LossConfig(
        vtc=float(weights.get("vtc", 1.0)),
        vtm=float(weights.get("vtm", 1.0)),
        mlm=float(weights.get("mlm", 1.0)) if is_pretrain else 0.0,
        vtm_hard_neg=bool(optional(cfg, "criterion.vtm_hard_neg", True)),
        mlm_masking_prob=float(optional(cfg, "criterion.mlm_masking_prob", 0.5)),
    )
    text = build_text_encoder(
        bert_config,
        with_mlm_head=is_pretrain,
        grad_checkpointing=bool(optional(cfg, "gradient_checkpointing", False)),
    )
    if optional(cfg, "model.text_encoder.load_text_weights", False):
        missing = load_pretrained_bert(text, resolve_path(cfg, text_cfg.pretrained))
        logger.info("BERT weights loaded; initialised from scratch: %d tensors", len(missing))
    token_ids = TokenIds(
        pad=tokenizer.pad_token_id,
        cls=tokenizer.cls_token_id,
        mask=tokenizer.mask_token_id,
        vocab_size=len(tokenizer),
        extra_special=[tokenizer.sep_token_id],
    )
    common = {
        "vision_width": require(cfg, "model.vision_encoder.clip_embed_dim"),
        "temp": require(cfg, "model.temp"),
        "loss": loss,
        "token_ids": token_ids,
        "video_mask_ratio": float(optional(cfg, "model.vision_encoder.video_mask_ratio", 0.0)),
        "image_mask_ratio": float(optional(cfg, "model.vision_encoder.image_mask_ratio", 0.0)),
        "freeze_vision": bool(optional(cfg, "model.freeze_vision", False)),
        "freeze_text": bool(optional(cfg, "model.freeze_text", False)),
    }
    if not audiovisual:
        return InternVideo2_Stage2(vision, text, embed_dim=require(cfg, "model.embed_dim"), **common)
    names = ("atc", "atm", "amlm", "avc", "avtc", "avtm", "avmlm")
    av_loss = AudioVisualLossConfig(**{n: float(weights.get(n, 0.0)) for n in names})
    if not is_pretrain:
        av_loss.amlm = av_loss.avmlm = 0.0
    return InternVideo2_Stage2_audiovisual(
        vision,
        text,
        build_audio_encoder(cfg),
        vision_token_width=vision.embed_dim,
        audio_width=int(require(cfg, "model.audio_encoder.d_model")),
        av_concat_dim=width,
        embed_dim=int(require(cfg, "model.contra_dim")),
        av_loss=av_loss,
        freeze_audio=bool(optional(cfg, "model.freeze_audio", True)),
        **common,
    )


def convert_stage2_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released stage-2 keys -> this model's: drop BERT's ``position_ids`` buffer (a constant the
    original saved, which transformers keeps out of state dicts)."""
    return {k: v for k, v in state.items() if not k.endswith("embeddings.position_ids")}


def convert_released_state_dict(
    model: torch.nn.Module, state: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Released keys -> ``model``'s: stage-2 BERT buffers, and for ``InternVideo2_CLIP`` the LLaMA
    text tower's transformers-4.28 RoPE buffers and peft >= 0.7 ``base_layer`` names."""
    from internvideo2.models.internvideo2_clip import InternVideo2_CLIP, convert_llama_text_keys

    state = convert_stage2_state_dict(state)
    if isinstance(model, InternVideo2_CLIP):
        state = convert_llama_text_keys(state, model.text_encoder.rope_frequencies())
    return state


def _read_state_dict(path: Path) -> dict:
    from ivtools.checkpoint import consolidate_zero_checkpoint, load_state_dict_file, unwrap_state_dict

    if path.is_dir() and (any(path.glob("mp_rank_*_model_states.pt")) or (path / "latest").is_file()):
        return consolidate_zero_checkpoint(path)
    return unwrap_state_dict(load_state_dict_file(path), "model|module")


def load_checkpoint(
    model: torch.nn.Module, path: str | Path, strict: bool = True
) -> tuple[list[str], list[str]]:
    """Load a stage-2 checkpoint (``model``/``module`` wrappers, released key layout), or the
    DeepSpeed checkpoint folder a ``deepspeed.enable`` run wrote (consolidated to fp32 weights).

    Without the MLM head (``is_pretrain=False``) the ``text_encoder.cls.*`` keys are skipped and the
    ``text_encoder.bert.`` prefix is mapped onto the bare BERT. A strict load that does not fit
    raises :class:`~internvideo2.models.CheckpointMismatchError` naming the first offending keys.
    Returns ``(missing, unexpected)``.
    """
    from internvideo2.models.loading import CheckpointMismatchError, mismatch_message

    state = convert_released_state_dict(model, _read_state_dict(Path(path)))
    own = model.state_dict()
    if not any(k.startswith("text_encoder.cls.") for k in own):
        state = {k: v for k, v in state.items() if not k.startswith("text_encoder.cls.")}
        state = {k.replace("text_encoder.bert.", "text_encoder.", 1): v for k, v in state.items()}
    if not strict:
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    elif problem := mismatch_message(model, state, str(path)):
        raise CheckpointMismatchError(problem)
    result = model.load_state_dict(state, strict=strict)
    return list(result.missing_keys), list(result.unexpected_keys)


def load_pretrained_parts(
    model: torch.nn.Module, cfg: DictConfig, checkpoint: str | Path | None = None
) -> None:
    """Training start points: ``model.vision_encoder.pretrained`` (a stage-1 or stage-2 checkpoint;
    its ``vision_encoder.`` part, alignment heads dropped, position tables resampled) into the vision
    encoder; ``model.text_ckpt_path`` (InternVL-C's file, ``InternVideo2_CLIP`` only) strictly into
    the LLaMA text tower; then ``checkpoint`` (default ``pretrained_path``; a whole or partial model
    checkpoint) non-strictly over everything."""
    text_weights = optional(cfg, "model.text_ckpt_path", "")
    if text_weights:
        from internvideo2.models.internvideo2_clip import load_internvl_text_weights

        kept = load_internvl_text_weights(model.text_encoder, resolve_path(cfg, text_weights))
        logger.info("text tower from %s; LoRA adapters at their start value: %d", text_weights, len(kept))
    vision_weights = optional(cfg, "model.vision_encoder.pretrained", "")
    if vision_weights:
        from internvideo2.models import load_checkpoint as load_vision_checkpoint

        report = load_vision_checkpoint(model.vision_encoder, resolve_path(cfg, vision_weights), strict=False)
        logger.info("vision encoder from %s: %s", vision_weights, report)
    path = checkpoint if checkpoint is not None else optional(cfg, "pretrained_path", "")
    if path:
        missing, unexpected = load_checkpoint(model, resolve_path(cfg, path), strict=False)
        logger.info("loaded %s; missing %d, unexpected %d", path, len(missing), len(unexpected))


def load_for_evaluation(model: torch.nn.Module, cfg: DictConfig, checkpoint: str | Path | None) -> None:
    """The weights to evaluate.

    A config that names start parts (``model.vision_encoder.pretrained``, ``model.text_ckpt_path``)
    loads them and then ``checkpoint`` over them non-strictly: that is how the original evaluates
    ``InternVideo2_CLIP``, whose training checkpoints keep only the trained parameters. Otherwise
    ``checkpoint`` must fit the model exactly.
    """
    if optional(cfg, "model.vision_encoder.pretrained", "") or optional(cfg, "model.text_ckpt_path", ""):
        load_pretrained_parts(model, cfg, checkpoint or "")
    elif checkpoint:
        load_checkpoint(model, checkpoint, strict=True)
    else:
        logger.warning("no checkpoint: evaluating randomly initialised weights")
