"""Stage-1 pretraining model (``InternVideo_next_s1.py``): masked video modelling against an image teacher.

From the visible tokens the student predicts

* the teacher's intermediate features at the visible positions, from ``clip_return_layer`` of its
  own layers, each through its own ``clip_decoder`` MLP (L2-normalised);
* the teacher's pooled image embedding, from the attention-pooled student token through
  ``final_clip_decoder``;
* the pixels of the *masked* tubelets: the visible tokens and a learned ``bert_mask_token`` at the
  masked positions (plus ``diff_pos_embed``) go through ``to_bert_proj`` and the semantic decoder
  (ModernBERT's last layers); its output conditions the diffusion loss on each masked patch.

Pixel targets are the normalised input video cut into ``C * p * p`` patch vectors in
``pixel_unshuffle`` order ``(c, ph, pw)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models import register_model
from torch import nn

from ivtools.layers import init_vit_weights

from .common import MLPDecoder, VideoTransformer, return_layer_indices
from .diffloss import DiffLoss
from .encoder import BASE, GIANT_1B, LARGE, RELEASED_DEFAULTS, model_kwargs
from .semantic_decoder import MaskTokenDecoding, build_semantic_decoder


class Stage1Output(NamedTuple):
    clip_middle: torch.Tensor  # (K, B, visible, teacher_dim), L2-normalised
    clip_final: torch.Tensor  # (B, teacher_final_dim), L2-normalised
    diffusion_loss: torch.Tensor  # scalar


def video_patches(video: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B, T*H'*W', C*p*p)`` in ``pixel_unshuffle`` channel order."""
    b, c, t, h, w = video.shape
    frames = video.transpose(1, 2).reshape(b * t, c, h, w)
    patches = F.pixel_unshuffle(frames, patch_size).permute(0, 2, 3, 1)
    return patches.reshape(b, -1, patches.shape[-1])


class InternVideoNextStage1(MaskTokenDecoding, VideoTransformer):
    extra_pos_embeds = ("clip_pos_embed", "diff_pos_embed")

    def __init__(
        self,
        clip_teacher_embed_dim: int = 1536,
        clip_teacher_final_dim: int = 1536,
        clip_return_layer: int = 6,
        clip_student_return_interval: float = 1,
        clip_student_return_index: list[int] | None = None,
        diffloss_d: int = 6,
        diffloss_w: int = 1536,
        diffusion_batch_mul: int = 1,
        bert_decoder: nn.Module | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        dim = self.embed_dim
        bert = bert_decoder if bert_decoder is not None else build_semantic_decoder()
        width = bert.config.hidden_size
        self.clip_return_index = return_layer_indices(
            len(self.blocks), clip_return_layer, clip_student_return_interval, clip_student_return_index
        )
        self.clip_decoder = nn.ModuleList(
            MLPDecoder(dim, clip_teacher_embed_dim) for _ in range(len(self.clip_return_index))
        )
        self.to_bert_proj = MLPDecoder(dim, width, l2_normalize=False)
        clip_dim = self.clip_projector.cross_attn.proj.out_features
        self.final_clip_decoder = MLPDecoder(clip_dim, clip_teacher_final_dim)
        self.bert_mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        trunc_normal_(self.bert_mask_token, std=0.02)
        # The original re-initialises its decoders with the trunk's truncated-normal init.
        for decoder in (self.clip_decoder, self.to_bert_proj, self.final_clip_decoder):
            decoder.apply(init_vit_weights)
        patch = self.patch_embed
        self.diffloss = DiffLoss(
            patch.in_chans * patch.patch_size**2, width, depth=diffloss_d, width=diffloss_w
        )
        self.diffusion_batch_mul = diffusion_batch_mul
        self.bert_decoder = bert

    def diffusion_loss(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # The denoiser always runs in fp32, as in the original (autocast to float32).
        with torch.autocast(z.device.type, enabled=False):
            z = z.float().repeat(self.diffusion_batch_mul, 1)
            target = target.float().repeat(self.diffusion_batch_mul, 1)
            return self.diffloss(target, z)

    def forward(self, video: torch.Tensor, mask: torch.Tensor) -> Stage1Output:
        """``video`` (B, C, T, H, W) normalised; ``mask`` (B, T*H*W) bool, True = hidden from the student."""
        x, middle, grid = self.forward_features(video, mask, self.clip_return_index)
        n = self.cls_token_num
        clip_pos = self.resized(self.clip_pos_embed, grid)[:, n:].expand(x.shape[0], -1, -1)
        visible_pos = clip_pos[~mask].reshape(x.shape[0], -1, x.shape[-1])
        clip_middle = torch.stack(
            [dec(h[:, n:] + visible_pos) for dec, h in zip(self.clip_decoder, middle, strict=True)]
        )
        clip_final = self.final_clip_decoder(self.clip_projector(x))
        z = self.semantic_decode(x, mask, grid)
        target = video_patches(video, self.patch_embed.patch_size)
        diff = self.diffusion_loss(z[mask], target[mask].to(z.dtype))
        return Stage1Output(clip_middle, clip_final, diff)


STAGE1_DEFAULTS = {**RELEASED_DEFAULTS, "clip_teacher_embed_dim": 1536, "clip_teacher_final_dim": 1536}


def _create(size: dict, **kwargs) -> InternVideoNextStage1:
    return InternVideoNextStage1(
        **{**STAGE1_DEFAULTS, "drop_path_rate": 0.05, **size, **model_kwargs(kwargs)}
    )


@register_model
def internvideo_next_stage1_base(pretrained: bool = False, **kwargs) -> InternVideoNextStage1:
    return _create(BASE, **kwargs)


@register_model
def internvideo_next_stage1_large(pretrained: bool = False, **kwargs) -> InternVideoNextStage1:
    return _create(LARGE, **kwargs)


@register_model
def internvideo_next_stage1_1b(pretrained: bool = False, **kwargs) -> InternVideoNextStage1:
    return _create(GIANT_1B, **kwargs)
