"""Stage 2: self-distillation from a frozen (or EMA) copy of the stage-1 model (``engine_for_stage2.py``).

Each clip gets the two JEPA multi-block mask views; for each view the student predicts the
teacher's final patch tokens (of the unmasked clip) at the hidden positions and the loss is
``2 - 2 cos``, summed over the two views. After each optimizer update the teacher moves towards
the student by ``teacher = m * teacher + (1 - m) * student`` (``--momentum``, 1.0 in the recipes).
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from torch import nn

from internvideo_next.data.masks import STAGE2_VIEWS, MultiBlockMask, stage2_max_keep
from ivtools.checkpoint import load_state_dict_file, unwrap_state_dict
from ivtools.distributed import is_main_process

from .pretrain import build_student, prepare_run, run_pretraining
from .stage1 import alignment_loss


class MomentumTeacher:
    """The stage-2 teacher, driven by the Trainer's EMA hooks (so it is saved and resumed with runs)."""

    def __init__(self, student: nn.Module, momentum: float = 1.0):
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.module = copy.deepcopy(student).eval().requires_grad_(False)
        self.momentum = momentum

    @torch.no_grad()
    def update(self, student: nn.Module, step: int | None = None) -> None:
        if self.momentum == 1.0:
            return
        for teacher_p, student_p in zip(self.module.parameters(), student.parameters(), strict=True):
            teacher_p.mul_(self.momentum).add_(student_p.detach(), alpha=1.0 - self.momentum)


class Stage2Step:
    def __init__(self, teacher: MomentumTeacher, max_keep: int | None = None):
        self.teacher, self.max_keep = teacher, max_keep
        self.trainer = None

    def __call__(self, model, batch, backend):
        video = backend.prepare(batch["video"])
        b, _, t, h, w = video.shape
        grid = backend.module.patch_embed.grid(t, h, w)
        teacher = self.teacher.module.to(video.device)
        target = teacher.teacher_features(video)
        max_keep = self.max_keep if self.max_keep is not None else stage2_max_keep(t)
        loss = video.new_zeros((), dtype=torch.float32)
        metrics = {}
        for view, cfg in enumerate(STAGE2_VIEWS):
            mask = MultiBlockMask(cfg, max_keep)(grid, b, torch.default_generator).to(video.device)
            pred = model(video, mask)
            view_target = F.normalize(target[mask].reshape(b, -1, target.shape[-1]).float(), dim=-1)
            view_loss = alignment_loss(pred.float(), view_target)
            metrics[f"loss_view{view + 1}"] = view_loss.detach()
            loss = loss + view_loss
        return loss, metrics


def load_stage1(model: nn.Module, path: str) -> None:
    """Stage-1 weights into the stage-2 model; stage-1-only heads are ignored (strict=False, reported)."""
    state = unwrap_state_dict(load_state_dict_file(path))
    result = model.load_state_dict(state, strict=False)
    if is_main_process():
        print(
            f"loaded {path}: missing {result.missing_keys}, unused {len(result.unexpected_keys)} keys",
            flush=True,
        )


def run_stage2(args: argparse.Namespace) -> list[dict]:
    dist = prepare_run(args)
    model = build_student(args)
    if args.stage1_checkpoint:
        load_stage1(model, args.stage1_checkpoint)
    teacher = MomentumTeacher(model, args.momentum)
    step = Stage2Step(teacher, args.max_keep)
    return run_pretraining(args, model, step, dist, ema=teacher)
