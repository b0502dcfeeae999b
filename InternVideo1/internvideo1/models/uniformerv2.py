"""UniFormerV2: a CLIP image ViT turned video classifier (re-implemented from the upstream design).

Per backbone block (CLIP's ``ResidualAttentionBlock``, frames processed independently) an optional
*local* temporal module (``lmhra1`` before and ``lmhra2`` after the spatial attention): BatchNorm,
a 1x1x1 reduction by ``dw_reduction``, a depth-wise temporal convolution (3x1x1) and a zero-initialised
1x1x1 expansion, added residually to the patch tokens. After each block listed in ``return_list``
a *global* decoder layer (``dec.j``) lets one learned video query (``temporal_cls_token``) attend to
every token of every frame, after a depth-wise 3x3x3 convolution (``dpe.j``) has added a dynamic
position encoding to the patch tokens. The prediction is made from the query, mixed with the mean of
the frames' class tokens by a learned ``sigmoid(balance)`` (``frozen=True`` uses the query alone).

Key layout: the released checkpoints wrap this module as ``backbone.`` (``backbone.conv1.weight``,
``backbone.transformer.resblocks.N.*``, ``backbone.transformer.dec.N.*``, ``backbone.transformer.proj.2.*``);
:func:`load_uniformerv2_checkpoint` reads them. Tensors are batch-first here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from timm.models import register_model
from torch import nn
from torch.utils.checkpoint import checkpoint

from ivtools.checkpoint import load_state_dict_file, strip_prefix, unwrap_state_dict
from ivtools.layers import DropPath

from ._factory import model_kwargs
from .clip_blocks import (
    MultiheadAttention,
    clip_mlp,
    clip_token_tables,
    drop_path_rates,
    load_clip_visual_weights,
)

logger = logging.getLogger(__name__)


class LayerNormFP32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as CLIP's, for fp16 training)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class LocalMHRA(nn.Module):
    """Local temporal relation aggregation on ``(N, C, T, H, W)``; starts as a zero function."""

    def __init__(self, dim: int, dw_reduction: float = 1.5, kernel_size: int = 3):
        super().__init__()
        reduced = int(dim // dw_reduction)
        self.pos_embed = nn.Sequential(
            nn.BatchNorm3d(dim),
            nn.Conv3d(dim, reduced, kernel_size=1),
            nn.Conv3d(
                reduced, reduced, (kernel_size, 1, 1), padding=(kernel_size // 2, 0, 0), groups=reduced
            ),
            nn.Conv3d(reduced, dim, kernel_size=1),
        )
        nn.init.zeros_(self.pos_embed[3].weight)
        nn.init.zeros_(self.pos_embed[3].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos_embed(x)


def _patch_volume(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Patch tokens ``(N*T, 1 + H*W, C)`` → ``(N, C, T, H, W)`` (the class token is left out)."""
    nt, length, dim = x.shape
    side = round((length - 1) ** 0.5)
    return x[:, 1:].reshape(nt // frames, frames, side, side, dim).permute(0, 4, 1, 2, 3)


def _add_to_patches(x: torch.Tensor, volume: torch.Tensor) -> torch.Tensor:
    """``x`` with ``volume`` ``(N, C, T, H, W)`` added to its patch tokens."""
    patches = volume.permute(0, 2, 3, 4, 1).flatten(0, 1).flatten(1, 2)
    return torch.cat([x[:, :1], x[:, 1:] + patches], dim=1)


class UniFormerV2Block(nn.Module):
    """CLIP block over each frame, with local temporal modules around the spatial attention."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        drop_path: float = 0.0,
        dw_reduction: float = 1.5,
        no_lmhra: bool = False,
        double_lmhra: bool = True,
    ):
        super().__init__()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if not no_lmhra:
            self.lmhra1 = LocalMHRA(dim, dw_reduction)
            if double_lmhra:
                self.lmhra2 = LocalMHRA(dim, dw_reduction)
        self.attn = MultiheadAttention(dim, num_heads)
        self.ln_1 = LayerNormFP32(dim)
        self.mlp = clip_mlp(dim, dim * 4)
        self.ln_2 = LayerNormFP32(dim)

    def _local(self, x: torch.Tensor, name: str, frames: int) -> torch.Tensor:
        module = getattr(self, name, None)
        if module is None:
            return x
        return _add_to_patches(x, self.drop_path(module(_patch_volume(x, frames))))

    def forward(self, x: torch.Tensor, frames: int, use_checkpoint: bool = False) -> torch.Tensor:
        """``x``: ``(N*T, 1 + H*W, C)``, the frames of a clip consecutive."""
        x = self._local(x, "lmhra1", frames)
        attn = (
            checkpoint(self.attn, self.ln_1(x), use_reentrant=False)
            if use_checkpoint
            else self.attn(self.ln_1(x))
        )
        x = x + self.drop_path(attn)
        x = self._local(x, "lmhra2", frames)
        mlp = (
            checkpoint(self.mlp, self.ln_2(x), use_reentrant=False)
            if use_checkpoint
            else self.mlp(self.ln_2(x))
        )
        return x + self.drop_path(mlp)


class Extractor(nn.Module):
    """A global decoder layer: the video query attends to ``ln_3(tokens)``, then an MLP.

    Output projections start at zero so that the decoder adds nothing at initialisation.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_factor: float = 4.0, dropout: float = 0.0, drop_path: float = 0.0
    ):
        super().__init__()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.attn = MultiheadAttention(dim, num_heads)
        self.ln_1 = nn.LayerNorm(dim)
        self.mlp = clip_mlp(dim, round(mlp_factor * dim), dropout=dropout, proj_dropout=0.0)
        self.ln_2 = nn.LayerNorm(dim)
        self.ln_3 = nn.LayerNorm(dim)
        nn.init.xavier_uniform_(self.attn.in_proj_weight)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)
        nn.init.xavier_uniform_(self.mlp.c_fc.weight)
        nn.init.zeros_(self.mlp.c_proj.weight)
        nn.init.zeros_(self.mlp.c_proj.bias)

    def forward(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        query = query + self.drop_path(self.attn(self.ln_1(query), context=self.ln_3(tokens)))
        return query + self.drop_path(self.mlp(self.ln_2(query)))


class UniFormerV2Transformer(nn.Module):
    """Backbone blocks, global decoder and classification head (``transformer.*`` in checkpoints)."""

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        t_size: int,
        backbone_drop_path_rate: float = 0.0,
        use_checkpoint: bool = False,
        checkpoint_num: int = 0,
        dw_reduction: float = 1.5,
        no_lmhra: bool = False,
        double_lmhra: bool = True,
        return_list: Sequence[int] = (8, 9, 10, 11),
        n_layers: int = 4,
        n_dim: int = 768,
        n_head: int = 12,
        mlp_factor: float = 4.0,
        drop_path_rate: float = 0.0,
        mlp_dropout: Sequence[float] = (0.5, 0.5, 0.5, 0.5),
        cls_dropout: float = 0.5,
        num_classes: int = 400,
        frozen: bool = False,
    ):
        super().__init__()
        return_list = list(return_list)
        if len(return_list) != n_layers or len(mlp_dropout) != n_layers:
            raise ValueError(
                f"n_layers={n_layers} needs that many return_list {return_list} and mlp_dropout {list(mlp_dropout)} entries"
            )
        if not all(0 <= i < layers for i in return_list):
            raise ValueError(f"return_list {return_list} names blocks outside 0..{layers - 1}")
        if n_dim != width:
            raise ValueError(f"the decoder width n_dim={n_dim} must equal the backbone width {width}")
        self.t_size, self.return_list, self.frozen = t_size, return_list, frozen
        self.use_checkpoint, self.checkpoint_num = use_checkpoint, checkpoint_num
        self.resblocks = nn.ModuleList(
            UniFormerV2Block(width, heads, r, dw_reduction, no_lmhra, double_lmhra)
            for r in drop_path_rates(backbone_drop_path_rate, layers)
        )
        self.temporal_cls_token = nn.Parameter(torch.zeros(1, 1, n_dim))
        self.dpe = nn.ModuleList(nn.Conv3d(n_dim, n_dim, 3, padding=1, groups=n_dim) for _ in range(n_layers))
        for conv in self.dpe:
            nn.init.zeros_(conv.bias)
        self.dec = nn.ModuleList(
            Extractor(n_dim, n_head, mlp_factor, dropout=d, drop_path=r)
            for d, r in zip(mlp_dropout, drop_path_rates(drop_path_rate, n_layers))
        )
        self.cls_dropout = cls_dropout
        # num_classes=0 (timm's convention) keeps no head: forward returns the fused feature.
        self.proj = self.classifier(n_dim, num_classes) if num_classes > 0 else nn.Identity()
        if not frozen:
            self.balance = nn.Parameter(torch.zeros(n_dim))

    def classifier(self, dim: int, num_classes: int) -> nn.Sequential:
        return nn.Sequential(nn.LayerNorm(dim), nn.Dropout(self.cls_dropout), nn.Linear(dim, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N*T, 1 + H*W, C)`` → the fused video feature ``(N, C)`` before the head."""
        frames = self.t_size
        batch = x.shape[0] // frames
        query = self.temporal_cls_token.expand(batch, -1, -1).to(x.dtype)
        for i, block in enumerate(self.resblocks):
            x = block(
                x, frames, use_checkpoint=self.use_checkpoint and self.training and i < self.checkpoint_num
            )
            if i in self.return_list:
                j = self.return_list.index(i)
                tokens = _add_to_patches(x, self.dpe[j](_patch_volume(x, frames)))
                query = self.dec[j](query, tokens.reshape(batch, -1, x.shape[-1]))
        query = query[:, 0]
        if self.frozen:
            return query
        weight = torch.sigmoid(self.balance)
        frame_cls = x[:, 0].reshape(batch, frames, -1).mean(1)
        return (1 - weight) * query + weight * frame_cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.forward_features(x))


class UniFormerV2(nn.Module):
    """``forward(video (N, 3, T, H, W))`` → logits ``(N, num_classes)``.

    ``temporal_downsample`` embeds tubelets of 3 frames with stride 2 (``t_size`` frames in, half as
    many tokens per position); otherwise each frame is embedded alone.
    """

    def __init__(
        self,
        input_resolution: int = 224,
        patch_size: int = 16,
        width: int = 768,
        layers: int = 12,
        heads: int = 12,
        t_size: int = 8,
        kernel_size: int = 3,
        temporal_downsample: bool = True,
        **transformer_kwargs,
    ):
        super().__init__()
        self.input_resolution, self.num_frames = input_resolution, t_size
        if temporal_downsample:
            if t_size % 2:
                raise ValueError(f"temporal_downsample needs an even t_size, got {t_size}")
            kernel, stride, padding = (
                (kernel_size, patch_size, patch_size),
                (2, patch_size, patch_size),
                ((kernel_size - 1) // 2, 0, 0),
            )
            t_size //= 2
        else:
            kernel = stride = (1, patch_size, patch_size)
            padding = 0
        self.conv1 = nn.Conv3d(3, width, kernel, stride, padding, bias=False)
        self.class_embedding, self.positional_embedding = clip_token_tables(
            width, input_resolution, patch_size
        )
        self.ln_pre = LayerNormFP32(width)
        self.transformer = UniFormerV2Transformer(width, layers, heads, t_size, **transformer_kwargs)
        head = self.transformer.proj
        self.num_classes = head[2].out_features if isinstance(head, nn.Sequential) else 0
        self.num_features = width

    def no_weight_decay(self) -> set[str]:
        return {
            "class_embedding",
            "positional_embedding",
            "transformer.temporal_cls_token",
            "transformer.balance",
        }

    def get_classifier(self) -> nn.Module:
        return self.transformer.proj[2] if self.num_classes else self.transformer.proj

    def reset_classifier(self, num_classes: int) -> None:
        """A new linear layer (the head's LayerNorm is kept), or no head for ``num_classes=0``."""
        if num_classes == 0:
            self.transformer.proj = nn.Identity()
        elif self.num_classes == 0:
            self.transformer.proj = self.transformer.classifier(self.num_features, num_classes)
        else:
            self.transformer.proj[2] = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] != self.num_frames or x.shape[-1] != self.input_resolution:
            raise ValueError(
                f"expected clips (N, 3, {self.num_frames}, {self.input_resolution}, {self.input_resolution}), "
                f"got {tuple(x.shape)}"
            )
        x = self.conv1(x)
        x = x.permute(0, 2, 3, 4, 1).flatten(0, 1).flatten(1, 2)  # N*T, H*W, C
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer.forward_features(self._embed(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer(self._embed(x))


# (input_resolution, patch, width, layers, heads, default return_list)
SIZES = {
    "uniformerv2_b16": (224, 16, 768, 12, 12, (8, 9, 10, 11)),
    "uniformerv2_l14": (224, 14, 1024, 24, 16, (20, 21, 22, 23)),
    "uniformerv2_l14_336": (336, 14, 1024, 24, 16, (20, 21, 22, 23)),
}


def _build(name: str, pretrained: bool, kwargs: dict) -> UniFormerV2:
    res, patch, width, layers, heads, return_list = SIZES[name]
    kwargs = model_kwargs(name, pretrained, kwargs)
    defaults = {
        "input_resolution": res,
        "patch_size": patch,
        "width": width,
        "layers": layers,
        "heads": heads,
        "t_size": 16,
        "return_list": return_list,
        "n_dim": width,
        "n_head": heads,
    }
    return UniFormerV2(**{**defaults, **kwargs})


@register_model
def uniformerv2_b16(pretrained: bool = False, **kwargs) -> UniFormerV2:
    return _build("uniformerv2_b16", pretrained, kwargs)


@register_model
def uniformerv2_l14(pretrained: bool = False, **kwargs) -> UniFormerV2:
    return _build("uniformerv2_l14", pretrained, kwargs)


@register_model
def uniformerv2_l14_336(pretrained: bool = False, **kwargs) -> UniFormerV2:
    return _build("uniformerv2_l14_336", pretrained, kwargs)


HEAD_KEYS = ("transformer.proj.2.weight", "transformer.proj.2.bias")


def load_uniformerv2_checkpoint(
    model: UniFormerV2,
    path: str | os.PathLike,
    label_map: Sequence[int] | None = None,
    delete_head: bool = False,
    strict: bool = True,
):
    """Load a released UniFormerV2 file (a bare ``backbone.*`` state dict or slowfast's
    ``{"model_state": ...}``).

    The head follows the original's ``DELETE_SPECIAL_HEAD`` rules: with ``delete_head`` a head of
    another class count is dropped (left at its initialisation); otherwise rows are selected by
    ``label_map`` (e.g. Kinetics-710 → 400) or the first ``num_classes`` rows are kept.
    """
    state = unwrap_state_dict(load_state_dict_file(path), "model_state|model|module|state_dict")
    state = strip_prefix(strip_prefix(state, "module."), "backbone.")
    if "conv1.weight" not in state:
        raise KeyError(f"{path}: not a UniFormerV2 checkpoint (no backbone.conv1.weight)")
    rows = state.get(HEAD_KEYS[0])
    if rows is not None and rows.shape[0] != model.num_classes:
        if delete_head:
            for key in HEAD_KEYS:
                state.pop(key)
            strict = False
        else:
            index = torch.as_tensor(label_map if label_map is not None else range(model.num_classes))
            if int(index.max()) >= rows.shape[0]:
                raise ValueError(
                    f"{path}: label map index {int(index.max())} beyond the {rows.shape[0]}-class head"
                )
            for key in HEAD_KEYS:
                state[key] = state[key][index]
    result = model.load_state_dict(state, strict=strict)
    missing = [k for k in result.missing_keys if k not in HEAD_KEYS]
    if missing:
        raise KeyError(f"{path}: checkpoint lacks {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    logger.info("loaded UniFormerV2 weights from %s: %s", path, result)
    return result


def load_clip_into_uniformerv2(model: UniFormerV2, path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Initialise the backbone from an image CLIP visual file (``conv1.weight``, ``transformer.resblocks.*``).

    The patch kernel is inflated (centre frame) when the model embeds tubelets; everything the
    image model lacks (local modules, decoder, head) keeps its initialisation.
    """
    state = unwrap_state_dict(load_state_dict_file(path), "model|state_dict")
    state = strip_prefix(state, "visual.")
    own = set(model.state_dict())
    usable = {k: v for k, v in state.items() if k in own}
    if "conv1.weight" not in usable:
        raise KeyError(f"{path}: no CLIP visual weights (conv1.weight) found")
    return load_clip_visual_weights(model, usable)
