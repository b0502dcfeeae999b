"""The released InternVideo-MM-B-16 / L-14 video-text model (the original's ``VideoIntern``).

The released files (``InternVideo-MM-B-16.ckpt``, ``InternVideo-MM-L-14.ckpt``) hold, under
``{"state_dict": {"clip.*": ...}}``, a video CLIP whose vision tower is UniFormerV2's
``vit_only_global`` (Multi-Modalities-Pretraining ``clip_utils/utils/clip_vit_only_global.py``):

* ``visual.*`` -- a CLIP image ViT applied to each frame (``conv1`` a bias-free ``(1, p, p)``
  Conv3d, per-frame class token and position table, ``ln_pre``, ``transformer.resblocks.N``),
  and UniFormerV2's global decoder after the last four blocks (``transformer.temporal_cls_token``,
  ``transformer.dpe.j``, ``transformer.dec.j``, ``transformer.balance``), with no local temporal
  modules and no classification head. This is :class:`~.uniformerv2.UniFormerV2` built with
  ``no_lmhra=True, temporal_downsample=False, num_classes=0``: same maths, same key names.
* ``visual_ln_post`` and ``visual_proj`` turn the fused video feature into the embedding;
* CLIP's text transformer at the top level (``transformer.*``, ``token_embedding``,
  ``positional_embedding``, ``ln_final``, ``text_projection``) plus ``text_mask_embedding``, and
  ``logit_scale``.

:func:`videointern_state_dict` maps that layout onto this module (the text keys go under
``text_encoder.``); :func:`load_videointern_checkpoint` loads it strictly. The original reads
clips of 8 frames normalised with CLIP's mean and std (0.481, 0.458, 0.408) / (0.269, 0.261, 0.276).
This model is the released *contrastive* part; :mod:`.multimodal` is the trainable model with
the masked-video stream, cross-model fusion and caption decoder, whose weights were not released.
"""

from __future__ import annotations

import logging
import math
import os
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ivtools.checkpoint import load_state_dict_file, unwrap_state_dict

from ._factory import register_factory
from .clip_blocks import CLIPTextEncoder
from .uniformerv2 import SIZES as UNIFORMERV2_SIZES
from .uniformerv2 import UniFormerV2

logger = logging.getLogger(__name__)

# Keys of the released layout that belong to the text tower (top level in the original).
_TEXT_KEYS = (
    "transformer.",
    "token_embedding.",
    "positional_embedding",
    "ln_final.",
    "text_projection",
    "text_mask_embedding",
)


class VideoIntern(nn.Module):
    """``encode_video(clip (B, 3, T, H, W)) -> (B, embed_dim)``, ``encode_text(ids) -> (B, embed_dim)``
    (both unnormalised); ``vision``/``text`` are the towers' keyword configs."""

    def __init__(self, vision: dict, text: dict, embed_dim: int, temp: float = 0.07):
        super().__init__()
        self.visual = UniFormerV2(
            **{**vision, "no_lmhra": True, "temporal_downsample": False, "num_classes": 0}
        )
        width = self.visual.num_features
        self.visual_ln_post = nn.LayerNorm(width)
        self.visual_proj = nn.Parameter(width**-0.5 * torch.randn(width, embed_dim))
        self.text_encoder = CLIPTextEncoder(embed_dim=embed_dim, mask_embedding=True, **text)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temp)))

    @property
    def context_length(self) -> int:
        return self.text_encoder.context_length

    @property
    def num_frames(self) -> int:
        return self.visual.num_frames

    def no_weight_decay(self) -> set[str]:
        names = {"logit_scale"} | {f"visual.{k}" for k in self.visual.no_weight_decay()}
        return names | {f"text_encoder.{k}" for k in self.text_encoder.no_weight_decay()}

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        return self.visual_ln_post(self.visual.forward_features(video)) @ self.visual_proj

    def encode_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder.encode_text(text_ids)

    @staticmethod
    def similarity(video_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(video_feats.float(), dim=-1) @ F.normalize(text_feats.float(), dim=-1).t()


# Per size: the UniFormerV2 backbone and (text width, heads, layers), embedding width.
_CONFIGS = {
    "b16": ("uniformerv2_b16", (512, 8, 12), 512),
    "l14": ("uniformerv2_l14", (768, 12, 12), 768),
}


def build_videointern(size: str, **kwargs) -> VideoIntern:
    """The released model of size ``"b16"``/``"l14"`` (8 frames, text context 77); ``vision=`` and
    ``text=`` dicts override the towers' configs, other keywords go to :class:`VideoIntern`."""
    if size not in _CONFIGS:
        raise ValueError(f"unknown InternVideo-MM size {size!r}; choose from {sorted(_CONFIGS)}")
    backbone, (text_width, text_heads, text_layers), embed_dim = _CONFIGS[size]
    res, patch, width, layers, heads, return_list = UNIFORMERV2_SIZES[backbone]
    vision = {
        "input_resolution": res,
        "patch_size": patch,
        "width": width,
        "layers": layers,
        "heads": heads,
        "t_size": 8,
        "return_list": return_list,
        "n_dim": width,
        "n_head": heads,
        **kwargs.pop("vision", {}),
    }
    text = {
        "context_length": 77,
        "vocab_size": 49408,
        "width": text_width,
        "heads": text_heads,
        "layers": text_layers,
        **kwargs.pop("text", {}),
    }
    return VideoIntern(vision, text, **{"embed_dim": embed_dim, **kwargs})


def videointern_state_dict(released: dict) -> dict:
    """The released ``clip.*`` layout (prefix optional) → this module's keys."""
    state = {k.removeprefix("clip."): v for k, v in released.items() if k.startswith("clip.")} or dict(
        released
    )
    return {(f"text_encoder.{k}" if k.startswith(_TEXT_KEYS) else k): v for k, v in state.items()}


def load_videointern_checkpoint(model: VideoIntern, path: str | os.PathLike, strict: bool = True):
    """Load a released InternVideo-MM file (``{"state_dict": {"clip.*": ...}}``) into ``model``."""
    state = unwrap_state_dict(load_state_dict_file(path), "state_dict|model|module")
    if not any(k.removeprefix("clip.").startswith("visual.conv1") for k in state):
        raise KeyError(f"{path}: not an InternVideo-MM checkpoint, no 'clip.visual.conv1.weight' key")
    result = model.load_state_dict(videointern_state_dict(state), strict=strict)
    logger.info("loaded InternVideo-MM weights from %s: %s", path, result)
    return result


for _size, _name in (("b16", "InternVideo-MM-B-16"), ("l14", "InternVideo-MM-L-14")):
    register_factory(
        f"videointern_{_size}",
        __name__,
        partial(build_videointern, _size),
        f"The released ``{_name}`` video-text model (keyword arguments as :func:`build_videointern`).",
    )
