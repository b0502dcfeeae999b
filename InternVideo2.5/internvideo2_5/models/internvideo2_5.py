"""InternVideo2.5 chat model on transformers' InternVL classes, with HiCo between ViT and projector.

transformers' :class:`~transformers.InternVLForConditionalGeneration` already carries
InternVL2.5's maths: the InternViT encoder (``InternVLVisionModel``), the pixel-shuffle
``get_image_features``, the LayerNorm-Linear-GELU-Linear projector and a decoder-only LLM
(Llama for InternLM2's maths, or Qwen2). The released InternVideo2.5 model differs in one step:
after pixel shuffle, the tokens of every ``local_num_frames`` consecutive tiles are merged down to
``num_tome_tokens`` (HiCo, :mod:`internvideo2_5.models.hico`) before the projector. This module
overrides that step, and the pixel shuffle for the released ``ps_version`` (``v1`` leaves the grid
transposed, as the original warns).

The HiCo settings live on the InternVL config as extra attributes (``local_num_frames``,
``num_tome_tokens``, ``ps_version``, ``hico_num_heads``), written by :func:`build_hf_config`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.internvl.modeling_internvl import InternVLPreTrainedModel

from internvideo2_5.configs.released import ChatModelConfig
from internvideo2_5.models.hico import compress_frames


def build_hf_config(config: ChatModelConfig, image_token_id: int) -> InternVLConfig:
    """The transformers config for ``config``; ``image_token_id`` is the tokenizer's ``<IMG_CONTEXT>``."""
    return InternVLConfig(
        vision_config=config.vision,
        text_config=config.llm,
        image_token_id=image_token_id,
        image_seq_length=config.tokens_per_frame,
        downsample_ratio=config.downsample_ratio,
        projector_hidden_act="gelu",
        vision_feature_layer=config.select_layer,
        vision_feature_select_strategy="default",
        tie_word_embeddings=bool(config.llm.tie_word_embeddings),
        ps_version=config.ps_version,
        local_num_frames=config.local_num_frames,
        num_tome_tokens=config.num_tome_tokens,
        hico_num_heads=config.llm.num_attention_heads,
    )


def pixel_shuffle(features: torch.Tensor, scale: float, ps_version: str) -> torch.Tensor:
    """``(N, W, H, C)`` -> ``(N, W*scale, H*scale, C/scale^2)`` by folding neighbouring patches into channels.

    ``v2`` swaps the two spatial axes back at the end; ``v1`` (the first InternVL releases) does not.
    """
    n, w, h, c = features.shape
    if (h * scale) % 1 or (w * scale) % 1:
        raise ValueError(f"a {w}x{h} patch grid cannot be shuffled by scale {scale}")
    x = features.reshape(n, w, int(h * scale), int(c / scale))
    x = x.permute(0, 2, 1, 3).reshape(n, int(h * scale), int(w * scale), int(c / scale**2))
    return x.permute(0, 2, 1, 3).contiguous() if ps_version == "v2" else x.contiguous()


class HiCoInternVLModel(InternVLModel):
    """InternVLModel whose image features are HiCo-compressed: ``tokens_per_frame`` per tile."""

    @property
    def tokens_per_frame(self) -> int:
        return self.config.num_tome_tokens // self.config.local_num_frames

    def vision_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixel-shuffled ViT tokens ``(tiles, P, C * 4)``, before merging."""
        pixel_values = pixel_values.to(dtype=self.vision_tower.dtype)
        layer = self.config.vision_feature_layer
        if layer == -1:
            hidden = self.vision_tower(pixel_values=pixel_values).last_hidden_state
        else:
            hidden = self.vision_tower(pixel_values=pixel_values, output_hidden_states=True).hidden_states[
                layer
            ]
        hidden = hidden[:, 1:]  # the class token is not a visual token
        side = int(hidden.shape[1] ** 0.5)
        grid = hidden.reshape(hidden.shape[0], side, side, -1)
        shuffled = pixel_shuffle(grid, self.config.downsample_ratio, self.config.ps_version)
        return shuffled.reshape(shuffled.shape[0], -1, shuffled.shape[-1])

    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """LLM-space visual tokens ``(tiles, tokens_per_frame, D)``; tiles come in groups of ``local_num_frames``."""
        tokens = self.vision_tokens(pixel_values)
        merged = compress_frames(
            tokens, self.config.local_num_frames, self.tokens_per_frame, self.config.hico_num_heads
        )
        return self.multi_modal_projector(merged)

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        return BaseModelOutputWithPooling(pooler_output=self.encode_frames(pixel_values))


class InternVideo2_5ForConditionalGeneration(InternVLForConditionalGeneration):
    """InternVL's generation model with :class:`HiCoInternVLModel` inside; ``forward``/``generate`` as upstream."""

    def __init__(self, config: InternVLConfig):
        InternVLPreTrainedModel.__init__(self, config)
        self.model = HiCoInternVLModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    @property
    def tokens_per_frame(self) -> int:
        return self.model.tokens_per_frame

    @property
    def local_num_frames(self) -> int:
        return self.config.local_num_frames

    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_frames(pixel_values)

    def embed_with_visual(self, input_ids: torch.Tensor, visual: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings of ``input_ids`` with the ``<IMG_CONTEXT>`` positions replaced by ``visual``."""
        embeds = self.get_input_embeddings()(input_ids)
        slots = input_ids == self.config.image_token_id
        wanted = int(slots.sum())
        given = 0 if visual is None else visual.shape[0] * visual.shape[1]
        if wanted != given:
            raise ValueError(
                f"the prompt has {wanted} image-context tokens but the video gives {given} visual tokens"
            )
        if visual is None:
            return embeds
        visual = visual.to(embeds.device, embeds.dtype).reshape(-1, embeds.shape[-1])
        return embeds.masked_scatter(slots.unsqueeze(-1), visual)
