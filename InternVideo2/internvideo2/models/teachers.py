"""Frozen teachers of InternVideo2 pretraining and distillation, in their released key layouts.

* :class:`InternVLCLIPVision` -- InternVL-C's 6B vision tower (3200 wide, 48 deep, 25 heads) with its
  attention-pooling ``clip_projector``; it encodes each frame as an image. Built by :func:`internvl_clip_6b`.
* :class:`VideoMAEv2Encoder` -- VideoMAEv2-g (1408 wide, 40 deep, tubelet 2, LayerNorm, qkv bias, a
  fixed sinusoid position table that is not saved). Built by :func:`videomae_g14`.
* :class:`InternVideo2Teacher` -- the InternVideo2-1B encoder used to distill S/B/L. Built by
  :func:`teacher_internvideo2_1B` (or :func:`teacher_internvideo2_6B`); loads stage-1 or stage-2
  (``vision_encoder.``) checkpoints.

The released teacher files have their own layouts; :func:`released_conversion` gives the
conversion that :func:`.loading.load_checkpoint` applies (``edit=``) before its strict load, also
registered with ``ivtools.checkpoint`` (``internvl_clip_to_teacher``, ``videomae_v2_to_teacher``):

* ``internvl_c_13b_224px.pth``: ``{'module': ...}`` under the tower's own names with a 2D patch
  kernel (centre-inflated by the loader); only the vision tower and its ``clip_projector`` are kept;
* ``vit_g_hybrid_1200e_pre.pth``: a VideoMAEv2 pretraining model, ``{'model': ...}``; the
  ``encoder.`` part is kept (decoder, ``encoder_to_decoder`` and ``mask_token`` left out), and a
  tubelet-2 kernel is averaged when the teacher is built with tubelet 1.

Each returns, like the original teachers, L2-normalised hidden states of the return layers
``(K, B, 1 + N, C)`` (VideoMAE: ``(K, B, N_vis, C)``, no class token), and the CLIP teachers also the
L2-normalised pooled embedding ``(B, clip_embed_dim)`` and, with ``return_attn``, the pooling
query's attention over the patch tokens (the signal attention-guided masking samples from).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from ivtools.checkpoint import interpolate_pos_embed, register_conversion
from ivtools.layers import DropPath, dot_product_attention, make_mlp, tubelet_embed

from .backbone import InternVideo2Encoder, select_visible
from .configs import VARIANTS, build
from .loading import StateDict
from .pretrain import NORM_TYPES, return_indices


def _l2(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


class _CLIPTeacherMixin:
    """Return-layer bookkeeping and output normalisation shared by the two CLIP-style teachers."""

    def __init__(
        self,
        clip_norm_type: str = "l2",
        return_attn: bool = True,
        clip_return_layer: int = 1,
        clip_return_interval: int = 1,
        clip_return_index: Sequence[int] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if clip_norm_type not in NORM_TYPES:
            raise ValueError(f"clip_norm_type must be one of {NORM_TYPES}, got {clip_norm_type!r}")
        self.clip_norm_type = clip_norm_type
        self.return_attn = return_attn
        self.return_index = (
            list(clip_return_index)
            if clip_return_index
            else return_indices(self.depth, clip_return_layer, clip_return_interval)
        )
        self.init_weights()

    def _pool(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pooled embedding and (with ``return_attn``) the query's attention over the patch tokens."""
        if not self.return_attn:
            return self.clip_projector(hidden), None
        pooled, attn = self.clip_projector(hidden, return_attn=True)
        return pooled, attn[:, 0, 1:]

    def _finish(self, states: torch.Tensor, pooled: torch.Tensor, attn: torch.Tensor | None):
        if self.clip_norm_type == "l2":
            states, pooled = _l2(states), _l2(pooled)
        return (states, pooled, attn) if self.return_attn else (states, pooled)


class InternVideo2Teacher(_CLIPTeacherMixin, InternVideo2Encoder):
    """The InternVideo2 encoder as a distillation teacher (``internvideo2_teacher.py``).

    ``forward(x) -> (states (K, B, 1 + N, D), pooled (B, clip_embed_dim)[, attn (B, N)])``.
    """

    def forward(self, x: torch.Tensor):
        hidden, states = self.run_blocks(self.embed(x), self.return_index)
        return self._finish(torch.stack(states), *self._pool(hidden))


class InternVLCLIPVision(_CLIPTeacherMixin, InternVideo2Encoder):
    """InternVL-C's vision tower applied frame by frame (``internvl_clip_vision.py``).

    ``pos_embed`` is ``(1, 1 + HW, D)`` and frozen; ``patch_embed.proj`` is a ``(1, 14, 14)`` Conv3d
    (the released 2D kernel is inflated on load, see :func:`.loading.inflate_patch_weight`).
    ``forward(video (B, 3, T, H, W)) -> (states (K, B, 1 + T*HW, C), pooled (B, C_clip)[, attn (B*T, HW)])``:
    per-frame class tokens and pooled embeddings are averaged over time, as in the original.
    """

    def __init__(self, **kwargs):
        super().__init__(
            **{"drop_path_rate": 0.2, "init_values": 0.1, **kwargs, "num_frames": 1, "tubelet_size": 1}
        )
        self.pos_embed.requires_grad_(False)

    def forward(self, video: torch.Tensor):
        tokens = self.patch_embed(video.type(self.dtype))  # (B, T, HW, C): frames become images
        batch, frames, patches, width = tokens.shape
        tokens = tokens.reshape(batch * frames, patches, width)
        tokens = torch.cat([self.cls_token.expand(batch * frames, -1, -1), tokens], dim=1) + self.pos_embed
        hidden, states = self.run_blocks(tokens, self.return_index)
        pooled, attn = self._pool(hidden)
        states = torch.stack(states)
        layers = states.shape[0]
        cls = states[:, :, :1].reshape(layers, batch, frames, 1, width).mean(2)
        patches_all = states[:, :, 1:].reshape(layers, batch, frames * patches, width)
        states = torch.cat([cls, patches_all], dim=2)
        pooled = pooled.reshape(batch, frames, -1).mean(1)
        return self._finish(states, pooled, attn)


class VideoMAEAttention(nn.Module):
    """VideoMAEv2 attention: ``qkv`` without bias plus free ``q_bias``/``v_bias`` (k gets none)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = nn.functional.linear(x, self.qkv.weight, bias)
        # (B, N, H, D): the layout the attention kernel expects (the original passed (B, H, N, D)).
        q, k, v = qkv.reshape(batch, tokens, 3, self.num_heads, -1).unbind(2)
        out = dot_product_attention(q, k, v, use_flash_attn=True)
        return self.proj(out.reshape(batch, tokens, width))


class VideoMAEBlock(nn.Module):
    """Pre-LayerNorm block (eps 1e-6), exact-GELU MLP, no layer scale (the released g14 has none)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float):
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.norm1 = norm(dim)
        self.attn = VideoMAEAttention(dim, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm(dim)
        self.mlp = make_mlp(dim, int(dim * mlp_ratio), fused=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def sinusoid_table(positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's 1-D table ``(1, positions, dim)``: channel ``2i`` sin, ``2i + 1`` cos of ``p / 10000^(2i/dim)``."""
    pos = torch.arange(positions, dtype=torch.float64)[:, None]
    exponent = 2 * (torch.arange(dim) // 2).to(torch.float64) / dim
    angles = pos / torch.pow(10000.0, exponent)[None]
    table = torch.where(torch.arange(dim) % 2 == 0, angles.sin(), angles.cos())
    return table.float()[None]


class VideoMAEv2Encoder(nn.Module):
    """VideoMAEv2 encoder as InternVideo2's MAE teacher (``videomae.py``, ``mae_g14_hybrid``).

    The position table is the sinusoid table of the released 8 x 16 x 16 token grid, resampled
    (time linearly, space bicubically) when this model's grid differs, as the original does.
    ``forward(x, mask=None) -> states (K, B, N_vis, D)``; the last block's output goes through
    ``norm``; states are L2-normalised when ``mae_norm_type='l2'``.
    """

    released_grid = (8, 16, 16)

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 14,
        in_chans: int = 3,
        embed_dim: int = 1408,
        depth: int = 40,
        num_heads: int = 16,
        mlp_ratio: float = 48 / 11,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        all_frames: int = 16,
        tubelet_size: int = 2,
        mae_norm_type: str = "l2",
        mae_return_layer: int = 1,
        mae_return_interval: int = 1,
    ):
        super().__init__()
        if mae_norm_type not in NORM_TYPES:
            raise ValueError(f"mae_norm_type must be one of {NORM_TYPES}, got {mae_norm_type!r}")
        if all_frames % tubelet_size:
            raise ValueError(f"all_frames={all_frames} is not divisible by tubelet_size={tubelet_size}")
        self.depth, self.mae_norm_type, self.tubelet_size = depth, mae_norm_type, tubelet_size
        self.return_index = return_indices(depth, mae_return_layer, mae_return_interval)
        self.grid_size = (all_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        kernel = (tubelet_size, patch_size, patch_size)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)
        table = sinusoid_table(
            self.released_grid[0] * self.released_grid[1] * self.released_grid[2], embed_dim
        )
        table = interpolate_pos_embed(table, 0, self.released_grid, self.grid_size)
        self.register_buffer("pos_embed", table, persistent=False)
        drop_path = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        self.blocks = nn.ModuleList(
            VideoMAEBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path[i]) for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = tubelet_embed(x, self.patch_embed.proj).flatten(1, 3)
        x = x + self.pos_embed.to(x.dtype)
        if mask is not None:
            x = select_visible(x, mask)
        states = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index == self.depth - 1:
                x = self.norm(x)
            if index in self.return_index:
                states.append(x)
        states = torch.stack(states)
        return _l2(states) if self.mae_norm_type == "l2" else states


def internvl_clip_6b(img_size: int = 224, **kwargs) -> InternVLCLIPVision:
    """InternVL-C 6B vision tower (``internvl_c_13b_224px``) as the pretraining CLIP teacher."""
    config = {**VARIANTS["6B"], "img_size": img_size, "layerscale_no_force_fp32": False}
    return build(InternVLCLIPVision, config, kwargs)


def videomae_g14(**kwargs) -> VideoMAEv2Encoder:
    """VideoMAEv2-g (``vit_g_hybrid_1200e_pre``), 16 frames, tubelet 2, as the pretraining MAE teacher."""
    return build(VideoMAEv2Encoder, {}, kwargs)


def teacher_internvideo2_1B(**kwargs) -> InternVideo2Teacher:
    """The InternVideo2-1B encoder as the distillation teacher (load stage-1 or stage-2 weights into it)."""
    return build(InternVideo2Teacher, VARIANTS["1B"], kwargs)


def teacher_internvideo2_6B(**kwargs) -> InternVideo2Teacher:
    """The InternVideo2-6B encoder as a teacher (the original's ``teacher_internvideo2_6B``, stage-1 6B weights)."""
    return build(InternVideo2Teacher, VARIANTS["6B"], kwargs)


INTERNVL_VISION_PARTS = ("pos_embed", "cls_token", "patch_embed.", "blocks.", "clip_projector.")


def internvl_clip_to_teacher(state_dict: StateDict) -> StateDict:
    """Released ``internvl_c_13b_224px`` -> :class:`InternVLCLIPVision`: the vision tower's tensors."""
    return {k: v for k, v in state_dict.items() if k.startswith(INTERNVL_VISION_PARTS)}


def videomae_v2_to_teacher(state_dict: StateDict) -> StateDict:
    """Released VideoMAEv2 pretraining checkpoint -> :class:`VideoMAEv2Encoder`: its ``encoder.`` part.

    A state dict without ``encoder.`` keys (already an encoder) is returned as it is.
    """
    if not any(k.startswith("encoder.") for k in state_dict):
        return dict(state_dict)
    return {k[len("encoder.") :]: v for k, v in state_dict.items() if k.startswith("encoder.")}


def released_conversion(teacher: nn.Module):
    """The conversion from ``teacher``'s released file layout, or None where it is the model's own."""
    if isinstance(teacher, InternVLCLIPVision):
        return internvl_clip_to_teacher
    if isinstance(teacher, VideoMAEv2Encoder):
        return videomae_v2_to_teacher
    return None


register_conversion(
    "internvl_clip_to_teacher",
    internvl_clip_to_teacher,
    help="InternVideo2: released InternVL-C 6B file -> the pretraining CLIP teacher's vision tower",
    overwrite=True,
)
register_conversion(
    "videomae_v2_to_teacher",
    videomae_v2_to_teacher,
    help="InternVideo2: released VideoMAEv2-g pretraining file -> the MAE teacher's encoder",
    overwrite=True,
)
