"""Action-recognition heads on the InternVideo-Next encoder: full fine-tuning and attentive probing.

* ``finetune``: the encoder's own attention pool (``clip_projector``) -> LayerNorm -> linear head,
  everything trained.
* ``probe``: the encoder is frozen; a new attention-pooling block over its patch tokens ->
  LayerNorm -> linear head are trained (attentive probing).
"""

from __future__ import annotations

import torch
from torch import nn

from ivtools.layers import AttentionPoolingBlock

from .encoder import InternVideoNext

MODES = ("finetune", "probe")


class InternVideoNextClassifier(nn.Module):
    def __init__(
        self,
        encoder: InternVideoNext,
        num_classes: int,
        mode: str = "finetune",
        head_drop_rate: float = 0.0,
        probe_num_heads: int = 16,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode, self.encoder = mode, encoder
        if mode == "probe":
            encoder.requires_grad_(False)
            width = encoder.embed_dim
            self.probe = AttentionPoolingBlock(width, probe_num_heads, out_dim=width)
        else:
            width = encoder.clip_projector.cross_attn.proj.out_features
        self.fc_norm = nn.LayerNorm(width)
        self.head_dropout = nn.Dropout(head_drop_rate)
        self.head = nn.Linear(width, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.mode == "probe":  # a frozen encoder also keeps drop-path and dropout off
            self.encoder.eval()
        return self

    def get_num_layers(self) -> int:
        return self.encoder.get_num_layers()

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {f"encoder.{name}" for name in self.encoder.no_weight_decay()}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return {
            "stem": r"^encoder\.(?:cls_token|pos_embed|patch_embed)",
            "blocks": r"^encoder\.blocks\.(\d+)" if coarse else [(r"^encoder\.blocks\.(\d+)", None)],
        }

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if self.mode == "probe":
            with torch.no_grad():
                x, _, _ = self.encoder.forward_features(video)
            pooled = self.probe(x[:, self.encoder.cls_token_num :])
        else:
            x, _, _ = self.encoder.forward_features(video)
            pooled = self.encoder.clip_projector(x)
        return self.head(self.head_dropout(self.fc_norm(pooled)))
