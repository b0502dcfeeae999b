"""Stage-2 pretraining model (``InternVideo_next_s2.py``): self-distillation from a frozen stage-1 copy.

The student sees a clip with a JEPA-style multi-block mask. Its visible tokens, with a learned
mask token at the hidden positions, go through ``to_bert_proj`` and the semantic decoder; the
``selfdist_decoder`` maps the decoder output back to the trunk width and the predictions at the
*masked* positions are matched (2 - 2 cos) to the teacher's final patch tokens of the full clip.

Weights in the released layout also hold ``clip_pos_embed``, ``selfdist_normproj_decoder`` and
``selfdist_proj_clip``; the original objective uses neither the normproj branch nor the pooled
projection, so they are kept (for loading and saving) but excluded from the loss.
"""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from timm.models import register_model
from torch import nn

from ivtools.layers import init_vit_weights

from .common import MLPDecoder, VideoTransformer
from .encoder import BASE, GIANT_1B, LARGE, RELEASED_DEFAULTS, model_kwargs
from .semantic_decoder import MaskTokenDecoding, build_semantic_decoder


class InternVideoNextStage2(MaskTokenDecoding, VideoTransformer):
    extra_pos_embeds = ("clip_pos_embed", "diff_pos_embed")

    def __init__(self, bert_decoder: nn.Module | None = None, **kwargs):
        super().__init__(**kwargs)
        dim = self.embed_dim
        bert = bert_decoder if bert_decoder is not None else build_semantic_decoder()
        width = bert.config.hidden_size
        clip_dim = self.clip_projector.cross_attn.proj.out_features
        self.to_bert_proj = MLPDecoder(dim, width, l2_normalize=False)
        self.selfdist_decoder = MLPDecoder(width, dim)
        self.selfdist_normproj_decoder = MLPDecoder(dim, dim)
        self.selfdist_proj_clip = MLPDecoder(clip_dim, dim)
        self.bert_mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        trunc_normal_(self.bert_mask_token, std=0.02)
        for name in ("to_bert_proj", "selfdist_decoder", "selfdist_normproj_decoder", "selfdist_proj_clip"):
            getattr(self, name).apply(init_vit_weights)
        self.bert_decoder = bert

    @torch.no_grad()
    def teacher_features(self, video: torch.Tensor) -> torch.Tensor:
        """The full clip's final patch tokens ``(B, T*H*W, D)`` (the original's ``embed_only``)."""
        x, _, _ = self.forward_features(video)
        return x[:, self.cls_token_num :]

    def forward(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Predictions ``(B, masked, D)`` (L2-normalised) at the masked positions, in token order."""
        x, _, grid = self.forward_features(video, mask)
        pred = self.selfdist_decoder(self.semantic_decode(x, mask, grid))
        return pred[mask].reshape(x.shape[0], -1, pred.shape[-1])


def _create(size: dict, **kwargs) -> InternVideoNextStage2:
    return InternVideoNextStage2(
        **{**RELEASED_DEFAULTS, "drop_path_rate": 0.05, **size, **model_kwargs(kwargs)}
    )


@register_model
def internvideo_next_stage2_base(pretrained: bool = False, **kwargs) -> InternVideoNextStage2:
    return _create(BASE, **kwargs)


@register_model
def internvideo_next_stage2_large(pretrained: bool = False, **kwargs) -> InternVideoNextStage2:
    return _create(LARGE, **kwargs)


@register_model
def internvideo_next_stage2_1b(pretrained: bool = False, **kwargs) -> InternVideoNextStage2:
    return _create(GIANT_1B, **kwargs)
