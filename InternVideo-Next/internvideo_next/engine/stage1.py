"""Stage 1: the student learns from a frozen SigLIP teacher (``engine_for_stage1.py``).

Loss = ``r0 * middle + r1 * final + r2 * diffusion`` (``--clip_loss_ratio``) where middle and final
are ``2 - 2 <student, teacher>`` averaged over visible tokens / clips: the teacher's intermediate
features at the student's visible positions, and its per-frame pooled embedding averaged over the
clip's frames.
"""

from __future__ import annotations

import argparse

import torch

from internvideo_next.data.masks import attention_mask, token_mask
from internvideo_next.data.schedule import MultiScaleSchedule, resample_clip
from internvideo_next.models import SiglipTeacher, build_siglip_teacher

from .pretrain import build_student, prepare_run, run_pretraining

MASK_TYPES = ("attention", "tube", "random")


def alignment_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (2 - 2 * (pred * target).sum(dim=-1)).mean()


class Stage1Step:
    """``step(model, batch, backend) -> (loss, metrics)`` for the Trainer."""

    def __init__(
        self,
        teacher: SiglipTeacher,
        mask_type: str = "attention",
        mask_ratio: float = 0.75,
        loss_ratio: tuple[float, float, float] = (1.0, 1.0, 1.0),
        schedule: MultiScaleSchedule | None = None,
    ):
        if mask_type not in MASK_TYPES:
            raise ValueError(f"unknown mask type {mask_type!r}")
        self.teacher, self.mask_type, self.mask_ratio = teacher, mask_type, mask_ratio
        self.loss_ratio, self.schedule = loss_ratio, schedule
        self.trainer = None  # set by run_pretraining: the schedule follows its update counter

    def __call__(self, model, batch, backend):
        video = backend.prepare(batch["video"])
        if self.schedule is not None:
            update = self.trainer.state.update if self.trainer is not None else 0
            video = resample_clip(video, self.schedule.at(update))
        student = backend.module
        b, _, t, h, w = video.shape
        grid = student.patch_embed.grid(t, h, w)
        self.teacher.to(video.device)
        out_t = self.teacher(video, grid[1:])
        if self.mask_type == "attention":
            mask = attention_mask(out_t.attn, self.mask_ratio, b)
        else:
            mask = token_mask(self.mask_type, grid, self.mask_ratio, b).to(video.device)
        out = model(video, mask)
        k, c = out_t.middle.shape[0], out_t.middle.shape[-1]
        if k != out.clip_middle.shape[0]:
            raise ValueError(f"teacher returns {k} layers but the student decodes {out.clip_middle.shape[0]}")
        middle_target = out_t.middle.reshape(k, b, -1, c)[:, ~mask].reshape(k, b, -1, c)
        final_target = out_t.final.reshape(b, grid[0], -1).mean(dim=1)
        loss_middle = alignment_loss(out.clip_middle.float(), middle_target.float())
        loss_final = alignment_loss(out.clip_final.float(), final_target.float())
        r0, r1, r2 = self.loss_ratio
        loss = r0 * loss_middle + r1 * loss_final + r2 * out.diffusion_loss
        metrics = {
            "loss_clip_middle": loss_middle.detach(),
            "loss_clip_final": loss_final.detach(),
            "diffusion_loss": out.diffusion_loss.detach(),
        }
        return loss, metrics


def run_stage1(args: argparse.Namespace) -> list[dict]:
    dist = prepare_run(args)
    extra = {
        "clip_teacher_embed_dim": args.clip_teacher_embed_dim,
        "clip_teacher_final_dim": args.clip_teacher_final_dim,
        "clip_return_layer": args.clip_return_layer,
        "clip_student_return_interval": args.clip_student_return_interval,
        "clip_student_return_index": args.clip_student_return_index,
    }
    extra.update({k: getattr(args, k) for k in ("diffloss_d", "diffloss_w") if getattr(args, k) is not None})
    model = build_student(args, **extra)
    teacher = build_siglip_teacher(
        args.clip_teacher_path,
        args.clip_return_layer,
        args.clip_teacher_return_interval,
        args.clip_teacher_return_index,
        **args.teacher_kwargs,
    )
    schedule = None
    if args.multi_scale:
        patch = model.patch_embed
        schedule = MultiScaleSchedule(
            args.f1, args.f2, args.fs, args.r1, args.r2, args.rs,
            patch_size=patch.patch_size,
            tubelet_size=patch.tubelet_size,
            base_tokens=args.base_token_num,
            min_tokens=args.min_token_limit,
            max_tokens=args.max_token_limit,
            batch_size=args.batch_size,
            seed=args.seed,
        )  # fmt: skip
    step = Stage1Step(teacher, args.mask_type, args.mask_ratio, tuple(args.clip_loss_ratio), schedule)
    return run_pretraining(args, model, step, dist)
