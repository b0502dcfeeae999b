"""Masked video pretraining and distillation: the student aligns its visible tokens with teachers.

One training step (the original ``engine_for_pretraining`` / ``engine_for_distill``):

1. Teacher inputs, without gradients. The MAE teacher (tubelet 2, pretraining only) sees all
   ``T`` frames; the student and the CLIP teacher see every ``td_ratio``-th frame
   (``td_ratio = mae_tubelet_size // tubelet_size``; 1 for distillation). Clips are resized to
   each teacher's input resolution when they differ.
2. The mask ``(B, 1 + N)``, True = hidden, class token always visible: from the dataset (tube or
   random) or drawn from the CLIP teacher's attention-pool weights (``attention``).
3. Targets: the CLIP teacher's last ``clip_return_layer`` layers on the student's visible tokens
   ``(K, B, N_vis, C)``, its final pooled feature ``(B, C')``, and the MAE teacher's last layers on
   the visible patch tokens ``(K', B, N_vis - 1, C'')``.
4. Loss: every term is ``mean(2 - 2 <s, t>)`` between l2-normalised features (MILAN-style), and
   ``loss = r0 * clip_middle + r1 * clip_final + mae_ratio * mae`` (``--clip_loss_ratio r0 r1``,
   ``--mae_loss_ratio``); the final-feature term is dropped when ``clip_teacher_final_dim`` is 0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from internvideo2.data.masking import attention_guided_mask, with_cls_column

NORM_TYPES = ("l2", "none")


def alignment_loss(student: torch.Tensor, teacher: torch.Tensor, norm_type: str = "l2") -> torch.Tensor:
    """``mean(2 - 2 * <student, teacher>)`` over all tokens; l2-normalises both first when ``l2``.

    For unit vectors this is the mean squared distance ``|s - t|^2``.
    """
    if norm_type not in NORM_TYPES:
        raise ValueError(f"norm_type must be one of {NORM_TYPES}, got {norm_type!r}")
    if student.shape != teacher.shape:
        raise ValueError(f"student features {tuple(student.shape)} and targets {tuple(teacher.shape)} differ")
    student, teacher = student.float(), teacher.float()
    if norm_type == "l2":
        student, teacher = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
    return (2 - 2 * (student * teacher).sum(dim=-1)).mean()


def visible_tokens(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep the visible tokens of stacked layer features: ``(K, B, L, C)`` with mask ``(B, L)``."""
    k, b, length, c = features.shape
    if mask.shape != (b, length):
        raise ValueError(f"mask {tuple(mask.shape)} does not match features {tuple(features.shape)}")
    keep = ~mask.bool()
    counts = keep.sum(1)
    if (counts != counts[0]).any():
        raise ValueError(f"every sample must keep as many tokens, got {counts.tolist()}")
    return features[:, keep].reshape(k, b, int(counts[0]), c)


def resize_clip(video: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize of every frame of ``(B, C, T, H, W)`` to ``size`` x ``size`` (no-op if equal)."""
    b, c, t, h, w = video.shape
    if (h, w) == (size, size):
        return video
    frames = F.interpolate(
        video.reshape(b, c * t, h, w), size=(size, size), mode="bicubic", align_corners=False
    )
    return frames.reshape(b, c, t, size, size)


@dataclass
class MaskedDistillationConfig:
    mask_type: str = "attention"
    mask_ratio: float = 0.8
    clip_loss_ratio: Sequence[float] = (1.0, 1.0)
    mae_loss_ratio: float = 1.0
    td_ratio: int = 1  # temporal downsampling from the MAE teacher's clip to the student's
    clip_input_resolution: int = 224
    mae_input_resolution: int = 224
    distill_final_features: bool = True
    clip_norm_type: str = "l2"
    mae_norm_type: str = "l2"
    teacher_dtype: torch.dtype | None = None  # autocast dtype for the teachers (bf16/fp16 runs)

    def __post_init__(self):
        if len(self.clip_loss_ratio) != 2:
            raise ValueError(
                f"clip_loss_ratio needs two values (middle, final), got {list(self.clip_loss_ratio)}"
            )
        if self.td_ratio < 1:
            raise ValueError(f"td_ratio must be >= 1, got {self.td_ratio}")


def _teacher_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _param_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


@torch.no_grad()
def teacher_targets(
    video: torch.Tensor,
    clip_teacher: nn.Module,
    mae_teacher: nn.Module | None,
    cfg: MaskedDistillationConfig,
    mask: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """Run the teachers on the full-rate clip ``video``; returns the mask (with class column) and targets."""
    batch = video.shape[0]
    student_video = video[:, :, :: cfg.td_ratio]
    with _teacher_context(video.device, cfg.teacher_dtype):
        clip_in = resize_clip(student_video, cfg.clip_input_resolution)
        clip_out = clip_teacher(clip_in.to(_param_dtype(clip_teacher)))
        mae = None
        if mae_teacher is not None:
            mae_in = resize_clip(video, cfg.mae_input_resolution)
            mae = mae_teacher(mae_in.to(_param_dtype(mae_teacher)))
    clip_middle, clip_final = clip_out[0], clip_out[1]
    if cfg.mask_type == "attention":
        if len(clip_out) < 3:
            raise ValueError("mask_type 'attention' needs a CLIP teacher built with return_attn=True")
        mask = attention_guided_mask(clip_out[2], batch, cfg.mask_ratio)
    elif mask is None:
        raise ValueError(f"mask_type {cfg.mask_type!r} needs masks from the dataset")
    mask = with_cls_column(mask.to(video.device))
    targets = {"mask": mask, "student_video": student_video, "clip_middle": visible_tokens(clip_middle, mask)}
    targets["clip_final"] = clip_final
    if mae is not None:
        targets["mae"] = visible_tokens(mae, mask[:, 1:])
    return targets


def masked_distillation_loss(
    outputs: Sequence[torch.Tensor], targets: dict[str, torch.Tensor], cfg: MaskedDistillationConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted loss and its terms from the student's ``(clip_middle, clip_final[, mae])``."""
    middle = alignment_loss(outputs[0], targets["clip_middle"], cfg.clip_norm_type)
    terms = {"loss_clip_middle": middle}
    loss = cfg.clip_loss_ratio[0] * middle
    if cfg.distill_final_features and cfg.clip_loss_ratio[1] > 0:
        final = alignment_loss(outputs[1], targets["clip_final"], cfg.clip_norm_type)
        terms["loss_clip_final"] = final
        loss = loss + cfg.clip_loss_ratio[1] * final
    if "mae" in targets:
        if len(outputs) < 3:
            raise ValueError("an MAE teacher is set but the student returns no MAE features")
        mae = alignment_loss(outputs[2], targets["mae"], cfg.mae_norm_type)
        terms["loss_mae"] = mae
        loss = loss + cfg.mae_loss_ratio * mae
    return loss, {k: v.detach() for k, v in terms.items()}


def masked_distillation_step_fn(
    clip_teacher: nn.Module, mae_teacher: nn.Module | None, cfg: MaskedDistillationConfig
):
    """``step_fn`` for :class:`ivtools.train.Trainer`."""

    def step(model, batch, backend):
        video = backend.prepare(batch["video"])
        mask = batch.get("mask")
        targets = teacher_targets(video, clip_teacher, mae_teacher, cfg, mask)
        outputs = model(targets["student_video"], targets["mask"])
        return masked_distillation_loss(outputs, targets, cfg)

    return step
