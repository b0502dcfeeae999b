"""Video classifiers: ``internvideo2_*``, attentive probing ``internvideo2_ap_*``, ``internvideo2_cat_*``.

``forward(video)`` returns logits. ``forward_features`` returns the tokens after the last block
``(B, 1 + N, D)`` and ``forward_head`` maps them to logits (``pre_logits=True`` stops at the
normalised pooled embedding), as timm models do.
"""

from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import nn

from .backbone import InternVideo2Encoder
from .configs import VARIANTS, register_variant


class InternVideo2(InternVideo2Encoder):
    """The single-modality classifier: encoder -> ``clip_projector`` -> ``fc_norm`` -> ``head``.

    Extra keyword arguments over :class:`InternVideo2Encoder`: ``fc_drop_rate`` (dropout before the
    head), ``num_classes`` and ``init_scale`` (the head's initial weights are scaled by it).
    """

    def __init__(
        self, fc_drop_rate: float = 0.0, num_classes: int = 1000, init_scale: float = 0.001, **kwargs
    ):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self._make_head(fc_drop_rate)
        self.init_weights()
        self._scale_head(init_scale)

    def _make_head(self, fc_drop_rate: float) -> None:
        self.fc_norm = nn.LayerNorm(self.clip_embed_dim)
        self.fc_dropout = nn.Dropout(fc_drop_rate) if fc_drop_rate > 0 else nn.Identity()
        self.head = nn.Linear(self.clip_embed_dim, self.num_classes)

    def _scale_head(self, init_scale: float) -> None:
        self.head.weight.data.mul_(init_scale)
        self.head.bias.data.mul_(init_scale)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_blocks(self.embed(x))[0]

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """The clip embedding ``(B, clip_embed_dim)`` the head reads (before ``fc_norm``)."""
        return self.clip_projector(tokens)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.fc_norm(self.pool(tokens))
        return x if pre_logits else self.head(self.fc_dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class InternVideo2AP(InternVideo2):
    """Attentive probing: a zero-initialised residual MLP (``extra_mlp``, VideoGLUE) after the pool."""

    def _make_head(self, fc_drop_rate: float) -> None:
        super()._make_head(fc_drop_rate)
        dim = self.clip_embed_dim
        self.extra_mlp = nn.Sequential(nn.LayerNorm(dim), Mlp(dim, hidden_features=dim * 4))

    def init_weights(self) -> None:
        super().init_weights()
        nn.init.zeros_(self.extra_mlp[1].fc2.weight)
        nn.init.zeros_(self.extra_mlp[1].fc2.bias)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.clip_projector(tokens)
        return x + self.extra_mlp(x)


MERGE_METHODS = ("proj", "cls_avg1", "cls_avgN", "cls_avg1_proj", "cls_avgN_proj")
MERGE_NORMS = ("kaiming_BN", "LN", "BN")


class InternVideo2Cat(InternVideo2):
    """Classifier over concatenated summaries (``merge_method``) of the final tokens.

    * ``proj``: the attention-pooled embedding only (same as :class:`InternVideo2`);
    * ``cls_avg1``: ``[cls, mean of patch tokens]`` (2 x ``embed_dim``);
    * ``cls_avgN``: ``[cls, per-frame means]`` each through ``Linear + GELU`` to ``clip_embed_dim``;
    * ``*_proj``: the above followed by the pooled embedding.

    The summaries are normalised by ``merge_norm``: ``kaiming_BN`` (BatchNorm without affine),
    ``BN`` or ``LN``. BatchNorm flattens channel-major, LayerNorm token-major, as in the original.
    """

    def __init__(self, merge_method: str = "proj", merge_norm: str = "kaiming_BN", **kwargs):
        if merge_method not in MERGE_METHODS:
            raise ValueError(f"merge_method must be one of {MERGE_METHODS}, got {merge_method!r}")
        if merge_norm not in MERGE_NORMS:
            raise ValueError(f"merge_norm must be one of {MERGE_NORMS}, got {merge_norm!r}")
        self.merge_method, self.merge_norm = merge_method, merge_norm
        super().__init__(**kwargs)

    def _make_head(self, fc_drop_rate: float) -> None:
        super()._make_head(fc_drop_rate)
        if self.merge_method == "proj":
            return
        width = self.embed_dim if "avg1" in self.merge_method else self.clip_embed_dim
        if self.merge_norm == "kaiming_BN":
            self.down_norm = nn.BatchNorm1d(width, affine=False, eps=1e-6)
        elif self.merge_norm == "BN":
            self.down_norm = nn.BatchNorm1d(width)
        else:
            self.down_norm = nn.LayerNorm(width)
        summaries = 2 if "avg1" in self.merge_method else self.grid_size[0] + 1
        if "avg1" in self.merge_method:
            self.down = nn.Identity()
        else:
            self.down = nn.Sequential(nn.Linear(self.embed_dim, self.clip_embed_dim), nn.GELU())
        in_features = summaries * width + (self.clip_embed_dim if self.merge_method.endswith("_proj") else 0)
        self.head = nn.Linear(in_features, self.num_classes)

    def _summaries(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, K * width)``: class token and patch means, projected and normalised."""
        cls, patches = tokens[:, :1], tokens[:, 1:]
        if "avg1" in self.merge_method:
            means = patches.mean(1, keepdim=True)
        else:
            means = patches.reshape(tokens.shape[0], self.grid_size[0], -1, tokens.shape[-1]).mean(2)
        merged = self.down(torch.cat([cls, means], dim=1))
        if "BN" in self.merge_norm:
            return self.down_norm(merged.transpose(1, 2)).flatten(1)
        return self.down_norm(merged).flatten(1)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.merge_method == "proj":
            return super().forward_head(tokens, pre_logits)
        features = self._summaries(tokens)
        if self.merge_method.endswith("_proj"):
            features = torch.cat([features, self.fc_norm(self.pool(tokens))], dim=1)
        return features if pre_logits else self.head(self.fc_dropout(features))


for _size, _config in VARIANTS.items():
    register_variant(__name__, f"internvideo2_{_size}_patch14_224", InternVideo2, _config)
    register_variant(__name__, f"internvideo2_ap_{_size}_patch14_224", InternVideo2AP, _config)
    register_variant(__name__, f"internvideo2_cat_{_size}_patch14_224", InternVideo2Cat, _config)
