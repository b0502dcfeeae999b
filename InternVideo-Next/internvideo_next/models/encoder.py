"""The released InternVideo-Next inference encoder (``InternVideo_next.py``) and its timm factories."""

from __future__ import annotations

import torch
from timm.models import register_model

from .common import VideoTransformer


class InternVideoNext(VideoTransformer):
    """Encoder of the released base/large checkpoints (4 class tokens, 16 frames, 224 px, patch 14).

    ``forward(video)`` returns the patch tokens ``(B, T*H*W, D)`` (class tokens dropped);
    ``forward(video, projected=True)`` the attention-pooled ``(B, clip_embed_dim)`` embedding.
    Other frame counts and resolutions resample the position table on the fly.
    """

    def forward(self, video: torch.Tensor, projected: bool = False) -> torch.Tensor:
        x, _, _ = self.forward_features(video)
        if projected:
            return self.clip_projector(x)
        return x[:, self.cls_token_num :]


BASE = {"embed_dim": 768, "depth": 12, "num_heads": 12, "mlp_ratio": 4.0}
LARGE = {"embed_dim": 1024, "depth": 24, "num_heads": 16, "mlp_ratio": 4.0}
GIANT_1B = {"embed_dim": 1408, "depth": 40, "num_heads": 16, "mlp_ratio": 48 / 11}
RELEASED_DEFAULTS = {"patch_size": 14, "img_size": 224, "attn_pool_num_heads": 16, "clip_embed_dim": 768}


TIMM_ONLY_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def model_kwargs(kwargs: dict) -> dict:
    """Drop what ``timm.create_model`` passes every factory but these models do not take."""
    return {k: v for k, v in kwargs.items() if k not in TIMM_ONLY_KWARGS}


def _create(size: dict, **kwargs) -> InternVideoNext:
    return InternVideoNext(**{**RELEASED_DEFAULTS, **size, **model_kwargs(kwargs)})


@register_model
def internvideo_next_base_patch14_224(pretrained: bool = False, **kwargs) -> InternVideoNext:
    return _create(BASE, **kwargs)


@register_model
def internvideo_next_large_patch14_224(pretrained: bool = False, **kwargs) -> InternVideoNext:
    return _create(LARGE, **kwargs)
