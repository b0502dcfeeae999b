"""InternVideo2 CLIP models: the video encoder aligned with a frozen text tower by contrastive loss.

* ``InternVideo2_CLIP`` (1B/6B): ``vision_encoder.*`` (the video ViT and its attention-pooling
  ``clip_projector`` to 768) + ``text_encoder.*`` (InternVL's LLaMA text tower: a transformers
  ``LlamaModel`` at ``text_encoder.transformer.*`` with LoRA on ``q_proj``/``v_proj`` and
  ``text_encoder.text_projection`` 4096 -> 768) + ``temp`` (1/100).
* ``InternVideo2_CLIP_small`` (S14/B14/L14): the same video encoder + ``vision_align`` (LayerNorm +
  Linear 768 -> 512) + a MobileCLIP text tower (:mod:`.mobileclip`) + ``temp``.

Both take ``(video (B, T, 3, H, W), input_ids, attention_mask, idx)`` in ``forward`` and return
``{"loss_vtc": ...}``; the text side is normally frozen (``freeze_text``), the vision side
trains only its ``clip_projector`` when ``open_vision_clip_projector``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from internvideo2.mm.losses import vtc_loss
from internvideo2.models.backbone import InternVideo2Encoder
from internvideo2.models.configs import VARIANTS, register_variant
from internvideo2.models.loading import CheckpointMismatchError, mismatch_message
from internvideo2.models.mobileclip import MobileCLIPTextConfig, MobileCLIPTextTransformer


class InternVideo2CLIPVision(InternVideo2Encoder):
    """The CLIP video encoder: blocks, then the ``clip_projector`` pool (``(B, clip_embed_dim)``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.init_weights()

    def forward(self, x: torch.Tensor, use_image: bool = False) -> torch.Tensor:
        hidden, _ = self.run_blocks(self.embed(x, use_image=use_image))
        return self.clip_projector(hidden)


_CLIP_VISION = {"S14": "small", "B14": "base", "L14": "large", "1B": "1B", "6B": "6B"}
for _name, _size in _CLIP_VISION.items():
    register_variant(
        __name__,
        f"internvideo2_clip_vision_{_name}",
        InternVideo2CLIPVision,
        {**VARIANTS[_size], "num_frames": 8, "init_values": 0.1},
    )


class LoRALinear(nn.Linear):
    """``W x + (alpha / r) B A dropout(x)`` with peft's key names (``lora_A.default.weight`` ...)."""

    def __init__(self, base: nn.Linear, r: int = 16, alpha: int = 32, dropout: float = 0.1):
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None)
        self.weight, self.bias = base.weight, base.bias
        self.lora_A = nn.ModuleDict({"default": nn.Linear(base.in_features, r, bias=False)})
        self.lora_B = nn.ModuleDict({"default": nn.Linear(r, base.out_features, bias=False)})
        self.lora_dropout = nn.ModuleDict({"default": nn.Dropout(dropout)})
        self.scaling = alpha / r
        nn.init.kaiming_uniform_(self.lora_A["default"].weight, a=5**0.5)
        nn.init.zeros_(self.lora_B["default"].weight)  # the adapted layer starts as the base layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lora = self.lora_B["default"](self.lora_A["default"](self.lora_dropout["default"](x)))
        return super().forward(x) + self.scaling * lora


class LlamaTextEncoder(nn.Module):
    """InternVL's LLaMA text tower: the last non-padding token's state times ``text_projection``.

    Padding is id 0, as the original's ``text > 0`` mask assumes; ``use_lora`` wraps every layer's
    ``q_proj`` and ``v_proj`` as peft's default LLaMA LoRA (r 16, alpha 32, dropout 0.1).
    """

    def __init__(self, config, clip_embed_dim: int = 768, use_lora: bool = True):
        super().__init__()
        from transformers import LlamaModel

        self.transformer = LlamaModel(config)
        if use_lora:
            for layer in self.transformer.layers:
                layer.self_attn.q_proj = LoRALinear(layer.self_attn.q_proj)
                layer.self_attn.v_proj = LoRALinear(layer.self_attn.v_proj)
        self.text_projection = nn.Parameter(torch.empty(config.hidden_size, clip_embed_dim))
        nn.init.normal_(self.text_projection, std=config.hidden_size**-0.5)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = ids > 0
        hidden = self.transformer(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        last = hidden[torch.arange(ids.shape[0], device=ids.device), mask.sum(1) - 1]
        return last @ self.text_projection

    def rope_frequencies(self) -> torch.Tensor:
        """The rotary frequencies this config implies (what old transformers saved per layer)."""
        return self.transformer.rotary_emb.inv_freq


# The original pins transformers 4.28.1, which saved every layer's RoPE frequencies as a persistent
# buffer; current transformers recompute them from the config, so the loader checks and drops them.
_ROPE_BUFFER = ".self_attn.rotary_emb.inv_freq"
# peft >= 0.7 keeps an adapted layer's own weight under ``base_layer``; older peft and this model
# keep it as the layer's ``weight``. peft's default LLaMA targets are these two projections.
_LORA_TARGETS = ("q_proj", "v_proj")
# What the original takes from InternVL-C's file (which also holds InternViT-6B and ``logit_scale``).
INTERNVL_TEXT_PARTS = ("transformer.", "text_projection")


def _check_rope_frequencies(key: str, saved: torch.Tensor, expected: torch.Tensor) -> None:
    same_shape = saved.shape == expected.shape
    if not (same_shape and torch.allclose(saved.float(), expected.float(), rtol=1e-3)):
        raise CheckpointMismatchError(
            f"{key}: saved RoPE frequencies {tuple(saved.shape)} differ from the model's "
            f"{tuple(expected.shape)} (another head size or rope_theta in the LLaMA config)"
        )


def convert_llama_text_keys(
    state: Mapping[str, torch.Tensor], rope_frequencies: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Released LLaMA text-tower keys (any prefix) -> :class:`LlamaTextEncoder`'s.

    ``*.self_attn.rotary_emb.inv_freq`` (transformers <= 4.30) is dropped once it is checked against
    ``rope_frequencies``; ``q_proj``/``v_proj.base_layer.weight`` (peft >= 0.7) becomes ``*.weight``.
    Other keys pass unchanged.
    """
    out = {}
    for key, value in state.items():
        if key.endswith(_ROPE_BUFFER):
            _check_rope_frequencies(key, value, rope_frequencies)
            continue
        for target in _LORA_TARGETS:
            key = key.replace(f".{target}.base_layer.", f".{target}.")
        out[key] = value
    return out


def load_internvl_text_weights(
    text_encoder: LlamaTextEncoder, checkpoint: str | Path | Mapping[str, torch.Tensor]
) -> list[str]:
    """Load InternVL-C's text tower (the original's ``text_ckpt_path``, ``internvl_c_13b_224px.pth``).

    Takes the ``transformer.*`` and ``text_projection`` keys, as the original does, converts them
    (:func:`convert_llama_text_keys`) and loads them strictly; any other missing, extra or misshapen
    key raises :class:`CheckpointMismatchError` naming the first ones. InternVL-C's tower has no
    LoRA (clip_benchmark's ``InternVL_C`` is a plain ``LlamaForCausalLM(...).model``), so absent
    adapters keep their start value (B = 0: the base layer's output), as in the original. Returns
    the adapter keys so kept.
    """
    from ivtools.checkpoint import load_state_dict_file, unwrap_state_dict

    if isinstance(checkpoint, (str, Path)):
        source, raw = str(checkpoint), load_state_dict_file(checkpoint)
    else:
        source, raw = "state dict", checkpoint
    state = unwrap_state_dict(raw, "module")
    text = {k: v for k, v in state.items() if k.startswith(INTERNVL_TEXT_PARTS)}
    text = convert_llama_text_keys(text, text_encoder.rope_frequencies())
    own = text_encoder.state_dict()
    kept = [k for k in own if ".lora_" in k and k not in text]
    text.update({k: own[k] for k in kept})
    problem = mismatch_message(text_encoder, text, source)
    if problem:
        raise CheckpointMismatchError(problem)
    text_encoder.load_state_dict(text, strict=True)
    return kept


def _freeze(module: nn.Module, keep: tuple[str, ...] = ()) -> None:
    for name, p in module.named_parameters():
        p.requires_grad_(any(k in name for k in keep))


class _CLIPBase(nn.Module):
    """Shared forward/loss/feature API; subclasses define ``encode_vision`` and ``encode_text``.

    Freezing as the original: a frozen vision encoder keeps its ``clip_projector`` trainable when
    ``open_vision_clip_projector``; a frozen text tower keeps the parameters named in ``text_keep``.
    """

    def __init__(
        self,
        vision_encoder: nn.Module,
        text_encoder: nn.Module,
        text_keep: tuple[str, ...] = (),
        temp: float = 0.01,
        temp_min: float = 0.01,
        freeze_vision: bool = True,
        open_vision_clip_projector: bool = True,
        freeze_text: bool = True,
    ):
        super().__init__()
        self.vision_encoder, self.text_encoder = vision_encoder, text_encoder
        self.temp = nn.Parameter(torch.tensor(float(temp)))
        self.temp_min = temp_min
        if freeze_vision:
            _freeze(vision_encoder, ("clip_projector",) if open_vision_clip_projector else ())
        if freeze_text:
            _freeze(text_encoder, text_keep)

    def no_weight_decay(self) -> set[str]:
        skip = {f"vision_encoder.{k}" for k in self.vision_encoder.no_weight_decay()}
        return {"temp"} | skip | {f"text_encoder.{k}" for k, _ in self.text_encoder.named_parameters()}

    def get_vid_feat(self, video: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, F.normalize(self.encode_vision(video), dim=-1)

    def get_txt_feat(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[None, torch.Tensor]:
        return None, F.normalize(self.encode_text(input_ids, attention_mask), dim=-1)

    def forward(self, video, input_ids, attention_mask, idx) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            self.temp.clamp_(min=self.temp_min)
        vision = self.encode_vision(video)
        text = self.encode_text(input_ids, attention_mask)
        return {"loss_vtc": vtc_loss(vision, text, idx, self.temp)}

    def _video(self, video: torch.Tensor) -> tuple[torch.Tensor, bool]:
        if video.dim() != 5:
            raise ValueError(f"expected (B, T, C, H, W) frames, got shape {tuple(video.shape)}")
        return video.permute(0, 2, 1, 3, 4), video.shape[1] == 1


class InternVideo2_CLIP(_CLIPBase):
    """``temp``, ``temp_min``, ``freeze_*`` and ``open_vision_clip_projector``: see :class:`_CLIPBase`."""

    def __init__(
        self,
        vision_encoder: InternVideo2CLIPVision,
        text_encoder: LlamaTextEncoder,
        open_text_projection: bool = False,
        open_text_lora: bool = False,
        **kwargs,
    ):
        keep = (("text_projection",) if open_text_projection else ()) + (("lora_",) if open_text_lora else ())
        super().__init__(vision_encoder, text_encoder, keep, **kwargs)

    def encode_vision(self, video: torch.Tensor) -> torch.Tensor:
        x, use_image = self._video(video)
        return self.vision_encoder(x, use_image=use_image)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.text_encoder(input_ids)


class InternVideo2_CLIP_small(_CLIPBase):
    """``temp``, ``temp_min``, ``freeze_*`` and ``open_vision_clip_projector``: see :class:`_CLIPBase`."""

    def __init__(
        self,
        vision_encoder: InternVideo2CLIPVision,
        text_encoder: MobileCLIPTextTransformer,
        align_dim: int = 512,
        open_text_projection: bool = False,
        **kwargs,
    ):
        keep = ("projection_layer",) if open_text_projection else ()
        super().__init__(vision_encoder, text_encoder, keep, **kwargs)
        width = vision_encoder.clip_embed_dim
        self.vision_align = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, align_dim))

    def encode_vision(self, video: torch.Tensor) -> torch.Tensor:
        x, use_image = self._video(video)
        return self.vision_align(self.vision_encoder(x, use_image=use_image))

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        pad = None if attention_mask is None else attention_mask == 0
        return self.text_encoder(input_ids, key_padding_mask=pad)


def mobileclip_text(name: str = "mobileclip_b", **overrides) -> MobileCLIPTextTransformer:
    """A MobileCLIP text tower by its original config name (fields overridable, e.g. for tests)."""
    from dataclasses import replace

    from internvideo2.models.mobileclip import MOBILECLIP_TEXT

    if name not in MOBILECLIP_TEXT:
        raise ValueError(f"unknown MobileCLIP text config {name!r}; known: {sorted(MOBILECLIP_TEXT)}")
    return MobileCLIPTextTransformer(replace(MOBILECLIP_TEXT[name], **overrides))


__all__ = [
    "InternVideo2CLIPVision",
    "InternVideo2_CLIP",
    "InternVideo2_CLIP_small",
    "LlamaTextEncoder",
    "LoRALinear",
    "convert_llama_text_keys",
    "load_internvl_text_weights",
    "MobileCLIPTextConfig",
    "mobileclip_text",
]
