"""InternVideo2 students with alignment heads: masked-video pretraining, distillation, stage-2 vision.

All three run the encoder on the visible tokens and project chosen intermediate hidden states to
the teachers' widths (``clip_decoder.*``: to the CLIP teacher; ``final_clip_decoder``: the pooled
embedding to the teacher's final CLIP space; ``mae_decoder.*``: to the VideoMAE teacher). Each
projected state first gets its own learned position table (``clip_pos_embed``, ``mae_pos_embed``),
gathered at the visible positions.

``mask`` is a bool tensor ``(B, 1 + N)`` over ``[cls, patches]``, True where a token is dropped;
every sample must keep the same number of tokens (the class-token column is normally False).
Intermediate states are returned in block order, as the original stacks them.

One deliberate difference: with the fused flags on, the original single-modality pretraining
model (not the distillation or stage-2 models) silently skips a requested return layer 0, because
it tests the residual *entering* the block; here every requested layer is returned.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .backbone import InternVideo2Encoder, select_visible
from .configs import VARIANTS, build, register_variant

NORM_TYPES = ("l2", "none")
DECODERS = ("Linear_Decoder", "MLP_Decoder")


class AlignDecoder(nn.Module):
    """``LayerNorm(head(x))``, then L2-normalised when ``norm_type='l2'``.

    ``mlp=False`` is the original ``Linear_Decoder`` (``head`` one Linear), ``mlp=True`` its
    ``MLP_Decoder`` (``head`` = Linear(in, in), exact GELU, Linear(in, out)).
    """

    def __init__(self, in_dim: int, out_dim: int, norm_type: str = "l2", mlp: bool = False):
        super().__init__()
        if norm_type not in NORM_TYPES:
            raise ValueError(f"norm_type must be one of {NORM_TYPES}, got {norm_type!r}")
        self.norm_type = norm_type
        if mlp:
            self.head = nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, out_dim))
        else:
            self.head = nn.Linear(in_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.head(x))
        return x / x.norm(dim=-1, keepdim=True) if self.norm_type == "l2" else x


def return_indices(depth: int, num_layers: int, interval: int) -> list[int]:
    """The original's student return layers: the last block, then every ``interval`` blocks back."""
    indices = [depth - int(i * interval) - 1 for i in range(num_layers)]
    if any(i < 0 for i in indices):
        raise ValueError(f"{num_layers} return layers every {interval} blocks do not fit in depth {depth}")
    return indices


class InternVideo2Student(InternVideo2Encoder):
    """Encoder + ``clip_pos_embed`` + ``clip_decoder`` (one per return layer) + ``final_clip_decoder``.

    Keyword arguments over :class:`InternVideo2Encoder` (the original's names): ``clip_teacher_embed_dim``,
    ``clip_teacher_final_dim`` (0: no final decoder, the pooled embedding is returned as is),
    ``clip_norm_type``, ``clip_return_layer``, ``clip_student_return_interval``,
    ``clip_student_return_index`` (explicit block indices, overriding the two before),
    ``clip_student_decoder`` (``Linear_Decoder`` or ``MLP_Decoder``) and
    ``sep_image_video_pos_embed`` (separate single-frame tables ``img_pos_embed``/``clip_img_pos_embed``).
    """

    def __init__(
        self,
        clip_teacher_embed_dim: int = 3200,
        clip_teacher_final_dim: int = 768,
        clip_norm_type: str = "l2",
        clip_return_layer: int = 1,
        clip_student_return_interval: int = 1,
        clip_student_return_index: Sequence[int] | None = None,
        clip_student_decoder: str = "Linear_Decoder",
        sep_image_video_pos_embed: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if clip_student_decoder not in DECODERS:
            raise ValueError(f"clip_student_decoder must be one of {DECODERS}, got {clip_student_decoder!r}")
        if sep_image_video_pos_embed:
            del self.pos_embed
            self._make_pos_embed(image_table=True)
        self._make_pos_embed("clip_", image_table=sep_image_video_pos_embed)
        if clip_student_return_index:
            self.clip_return_index = list(clip_student_return_index)
        else:
            self.clip_return_index = return_indices(
                self.depth, clip_return_layer, clip_student_return_interval
            )
        mlp = clip_student_decoder == "MLP_Decoder"
        self.clip_decoder = nn.ModuleList(
            AlignDecoder(self.embed_dim, clip_teacher_embed_dim, clip_norm_type, mlp)
            for _ in range(clip_return_layer)
        )
        self.final_clip_decoder = (
            AlignDecoder(self.clip_embed_dim, clip_teacher_final_dim, clip_norm_type, mlp)
            if clip_teacher_final_dim > 0
            else nn.Identity()
        )

    def encode(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        return_index: Sequence[int],
        use_image: bool = False,
        stop_after: int | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Visible tokens through the blocks: ``(final hidden state, states after return_index)``."""
        tokens = self.embed(x, use_image=use_image)
        if mask is not None:
            tokens = select_visible(tokens, mask)
        return self.run_blocks(tokens, return_index, stop_after)

    @staticmethod
    def align(
        states: Sequence[torch.Tensor],
        decoders: nn.ModuleList,
        table: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """``stack([decoder_k(state_k + table at the visible positions)])``: ``(K, B, N_vis, out)``."""
        if len(states) != len(decoders):
            raise ValueError(f"{len(states)} returned hidden states for {len(decoders)} decoders")
        batch = states[0].shape[0]
        table = table.expand(batch, -1, -1)
        if mask is not None:
            table = select_visible(table, mask)
        return torch.stack([decoder(state + table) for decoder, state in zip(decoders, states)])

    def clip_outputs(
        self,
        x: torch.Tensor,
        states: Sequence[torch.Tensor],
        mask: torch.Tensor | None,
        use_image: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(pooled (B, clip_embed_dim), clip_align (K, B, N_vis, C_t), final_align (B, C_final))``."""
        pooled = self.clip_projector(x)
        table = self.pos_embed_table("clip_", use_image=use_image)
        return pooled, self.align(states, self.clip_decoder, table, mask), self.final_clip_decoder(pooled)


class DistillInternVideo2(InternVideo2Student):
    """Distillation student (``distill_internvideo2_*``): ``forward(x, mask=None) -> (clip_align, final_align)``."""

    def __init__(self, drop_path_rate: float = 0.05, **kwargs):
        super().__init__(drop_path_rate=drop_path_rate, **kwargs)
        self.init_weights()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, states = self.encode(x, mask, self.clip_return_index)
        _, clip_align, final_align = self.clip_outputs(hidden, states, mask)
        return clip_align, final_align


class InternVideo2Stage2Vision(InternVideo2Student):
    """The multi-modality stage-2 vision encoder (the original's multi-modality ``PretrainInternVideo2``).

    ``forward(x, mask=None, use_image=False, x_vis_return_idx=-1, x_vis_only=False)`` returns
    ``(x_vis (B, N_vis, D), x_pool_vis (B, clip_embed_dim), clip_align, final_align)``, or ``x_vis``
    alone with ``x_vis_only``. ``use_image`` takes ``(B, 3, 1, H, W)``; ``x_vis_return_idx=-k`` stops
    after block ``depth - k``.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.init_weights()

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        use_image: bool = False,
        x_vis_return_idx: int = -1,
        x_vis_only: bool = False,
    ):
        stop_after = self.depth + x_vis_return_idx
        if not 0 <= stop_after < self.depth:
            raise ValueError(f"x_vis_return_idx must be in [-{self.depth}, -1], got {x_vis_return_idx}")
        hidden, states = self.encode(x, mask, self.clip_return_index, use_image, stop_after)
        if x_vis_only:
            return hidden
        pooled, clip_align, final_align = self.clip_outputs(hidden, states, mask, use_image)
        return hidden, pooled, clip_align, final_align


class PretrainInternVideo2(InternVideo2Student):
    """Single-modality masked video pretraining student (``pretrain_internvideo2_{1B,6B}_patch14_224``).

    Adds ``mae_pos_embed`` (no class-token row) and ``mae_decoder.*`` (MLP decoders to the VideoMAE
    teacher's width), configured by ``mae_teacher_embed_dim``, ``mae_norm_type``, ``mae_return_layer``
    and ``mae_student_return_interval``. ``forward(x, mask) -> (clip_align (K, B, N_vis, C_clip),
    final_align (B, C_final), mae_align (K', B, N_vis - 1, C_mae))``; the MAE states leave out the
    class token.
    """

    def __init__(
        self,
        mae_teacher_embed_dim: int = 1408,
        mae_norm_type: str = "l2",
        mae_return_layer: int = 1,
        mae_student_return_interval: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._make_pos_embed("mae_", cls_row=False)
        self.mae_return_index = return_indices(self.depth, mae_return_layer, mae_student_return_interval)
        self.mae_decoder = nn.ModuleList(
            AlignDecoder(self.embed_dim, mae_teacher_embed_dim, mae_norm_type, mlp=True)
            for _ in range(mae_return_layer)
        )
        self.init_weights()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        wanted = sorted(set(self.clip_return_index) | set(self.mae_return_index))
        hidden, states = self.encode(x, mask, wanted)
        by_index = dict(zip(wanted, states))
        clip_states = [by_index[i] for i in sorted(self.clip_return_index)]
        mae_states = [by_index[i][:, 1:] for i in sorted(self.mae_return_index)]
        _, clip_align, final_align = self.clip_outputs(hidden, clip_states, mask)
        mae_align = self.align(mae_states, self.mae_decoder, self.pos_embed_table("mae_"), mask[:, 1:])
        return clip_align, final_align, mae_align


for _size in ("1B", "6B"):
    register_variant(
        __name__, f"pretrain_internvideo2_{_size}_patch14_224", PretrainInternVideo2, VARIANTS[_size]
    )
for _size in ("small", "base", "large"):
    register_variant(
        __name__, f"distill_internvideo2_{_size}_patch14_224", DistillInternVideo2, VARIANTS[_size]
    )


def stage2_vision_encoder(size: str = "1B", **kwargs) -> InternVideo2Stage2Vision:
    """The multi-modality stage-2 vision encoder as the released configs build it.

    Defaults: 4 frames, 6 CLIP return layers, teacher widths 3200/768, and for the 1B model separate
    image/video position tables (``sep_image_video_pos_embed=True``), drop path 0.25 (1B) / 0.3 (6B).
    """
    if size not in ("1B", "6B"):
        raise ValueError(f"stage-2 vision encoders exist for '1B' and '6B', got {size!r}")
    defaults = {
        "num_frames": 4,
        "clip_return_layer": 6,
        "sep_image_video_pos_embed": size == "1B",
        "drop_path_rate": 0.25 if size == "1B" else 0.3,
    }
    return build(InternVideo2Stage2Vision, {**VARIANTS[size], **defaults}, kwargs)
