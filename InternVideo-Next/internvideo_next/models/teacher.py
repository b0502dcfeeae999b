"""The frozen image teacher of stage 1: a SigLIP / SigLIP2 vision tower from transformers.

The released recipe uses SigLIP2-1B (1536-d, 40 layers, patch 16) at 256 px; its fixed-resolution
weights load into transformers' ``SiglipVisionModel``. Per frame the teacher returns

* ``middle`` -- the hidden states *entering* the layers ``depth - int(i * interval) - 1``
  (``i < clip_return_layer``), in layer order, L2-normalised: ``(K, B*T, N, C)``;
* ``final`` -- the attention-pooling head's output, L2-normalised: ``(B*T, C)``;
* ``attn`` -- that head's probe attention over the N patches, averaged over heads: ``(B*T, N)``,
  which drives the attention-guided mask.

Inputs are student clips normalised with ImageNet statistics; they are re-normalised to SigLIP's
(0.5, 0.5) and resized to ``grid * patch_size`` pixels so teacher and student token grids match.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .common import return_layer_indices
from .local_weights import load_local_pretrained

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# A full SigLIP checkpoint ("siglip": vision and text towers, as released -- the fixed-resolution
# SigLIP2 models included) or a saved vision tower alone. The NaFlex SigLIP2 models ("siglip2") embed
# patches with a linear layer over variable grids and do not fit this tower.
SIGLIP_MODEL_TYPES = ("siglip", "siglip_vision_model")
SIGLIP2_1B = {
    "hidden_size": 1536,
    "intermediate_size": 6144,
    "num_attention_heads": 16,
    "num_hidden_layers": 40,
    "patch_size": 16,
    "image_size": 256,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
}


class TeacherOutput(NamedTuple):
    middle: torch.Tensor
    final: torch.Tensor
    attn: torch.Tensor


class SiglipTeacher(nn.Module):
    def __init__(self, tower: nn.Module, return_layers: list[int]):
        super().__init__()
        self.tower = tower.eval().requires_grad_(False)
        self.return_layers = return_layers
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # ImageNet-normalised -> [0, 1] -> SigLIP's (x - 0.5) / 0.5, as one affine map.
        self.register_buffer("scale", std / 0.5, persistent=False)
        self.register_buffer("shift", (mean - 0.5) / 0.5, persistent=False)

    @property
    def patch_size(self) -> int:
        return self.tower.config.patch_size

    @property
    def embed_dim(self) -> int:
        return self.tower.config.hidden_size

    def train(self, mode: bool = True):  # always frozen
        return super().train(False)

    @torch.no_grad()
    def forward(self, video: torch.Tensor, grid_hw: tuple[int, int]) -> TeacherOutput:
        b, c, t, h, w = video.shape
        frames = video.transpose(1, 2).reshape(b * t, c, h, w).float()
        size = (grid_hw[0] * self.patch_size, grid_hw[1] * self.patch_size)
        if (h, w) != size:
            frames = F.interpolate(frames, size=size, mode="bicubic", align_corners=False)
        pixels = (frames * self.scale + self.shift).to(self.tower.dtype)
        native = self.tower.config.image_size
        hidden = self.tower.embeddings(pixels, interpolate_pos_encoding=size != (native, native))
        middle = []
        for idx, layer in enumerate(self.tower.encoder.layers):
            if idx in self.return_layers:
                middle.append(hidden)
            hidden = layer(hidden, None)
        hidden = self.tower.post_layernorm(hidden)
        head = self.tower.head
        pooled, attn = head.attention(
            head.probe.expand(hidden.shape[0], -1, -1), hidden, hidden, need_weights=True
        )
        pooled = pooled + head.mlp(head.layernorm(pooled))
        return TeacherOutput(
            F.normalize(torch.stack(middle), dim=-1),
            F.normalize(pooled[:, 0], dim=-1),
            attn[:, 0],
        )


def build_siglip_teacher(
    path: str | os.PathLike | None = None,
    return_layer: int = 6,
    return_interval: float = 1,
    return_index: list[int] | None = None,
    **config_overrides,
) -> SiglipTeacher:
    """A teacher from a local SigLIP/SigLIP2 folder, or with random weights from a config.

    Without ``path`` the tower is built from :data:`SIGLIP2_1B` updated by ``config_overrides``
    (tests use tiny configs). Nothing is downloaded; a folder of another model type, or one whose
    checkpoint lacks any vision-tower weight, is refused rather than left partly random.
    """
    from transformers import SiglipVisionConfig, SiglipVisionModel

    if path is None:
        config = SiglipVisionConfig(**{**SIGLIP2_1B, **config_overrides})
        config._attn_implementation = "sdpa"
        tower = SiglipVisionModel(config)
    else:
        tower = load_local_pretrained(SiglipVisionModel, path, SIGLIP_MODEL_TYPES, "SigLIP teacher")
    if not getattr(tower.config, "vision_use_head", True):
        raise ValueError(f"the teacher at {path} has no attention-pooling head (vision_use_head=False)")
    depth = tower.config.num_hidden_layers
    return SiglipTeacher(tower, return_layer_indices(depth, return_layer, return_interval, return_index))
