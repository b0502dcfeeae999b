"""Training set-up from the original's command-line arguments, shared by every entry point.

Fine-tuning, pretraining, distillation and the multi-modality stages all read the same argument
names (``--lr`` for a global batch of 256, ``--warmup_epochs``/``--warmup_steps``, ``--min_lr``,
``--weight_decay_end``, ``--enable_deepspeed``, ``--bf16`` ...). These functions turn them into
the optimizer, schedules, backend and :class:`TrainerConfig`, so that each entry point only adds
what is its own (data, model, step function).
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch
from torch import nn

from ivtools.distributed import DistInfo
from ivtools.train.backend import DeepSpeedBackend, NativeBackend
from ivtools.train.optim import WeightDecaySchedule, build_lr_scheduler, build_optimizer, scale_lr
from ivtools.train.trainer import TrainerConfig, updates_per_epoch


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch differently on every rank (augmentations must differ)."""
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)


def precision_of(args: argparse.Namespace) -> str:
    if getattr(args, "bf16", False):
        return "bf16"
    if getattr(args, "fp16", False):
        return "fp16"
    return "fp32"


def global_batch_size(args: argparse.Namespace, dist: DistInfo) -> int:
    """Clips per optimizer update over all ranks (repeated augmentation counts each copy)."""
    return args.batch_size * args.update_freq * dist.world_size * getattr(args, "num_sample", 1)


def optimizer_from_args(
    args: argparse.Namespace, model: nn.Module, global_batch: int
) -> torch.optim.Optimizer:
    """timm's optimizer with the lr scaled to the global batch and optional layer-wise decay."""
    return build_optimizer(
        model,
        args.opt,
        lr=scale_lr(args.lr, global_batch),
        weight_decay=args.weight_decay,
        layer_decay=getattr(args, "layer_decay", None),
        eps=args.opt_eps,
        betas=args.opt_betas,
        momentum=getattr(args, "momentum", 0.9),
    )


def backend_from_args(
    args: argparse.Namespace,
    model: nn.Module,
    optimizer,
    dist: DistInfo,
    zero_options: dict | None = None,
):
    """DeepSpeed (``--enable_deepspeed``, ZeRO ``--zero_stage``) or native DDP/autocast training.

    ``zero_options`` join DeepSpeed's ZeRO section (e.g. ZeRO-3 communication switches); under
    ZeRO-3 so does ``--stage3_param_persistence_threshold`` where the parser has it and it is set.
    """
    common = {"precision": precision_of(args), "clip_grad": args.clip_grad, "accumulation": args.update_freq}
    if getattr(args, "enable_deepspeed", False):
        micro_batch = args.batch_size * getattr(args, "num_sample", 1)
        zero = dict(zero_options or {})
        threshold = getattr(args, "stage3_param_persistence_threshold", None)
        if args.zero_stage == 3 and threshold is not None:
            zero["stage3_param_persistence_threshold"] = threshold
        return DeepSpeedBackend(
            model,
            optimizer,
            dist,
            zero_stage=args.zero_stage,
            micro_batch_size=micro_batch,
            zero_options=zero,
            **common,
        )
    # Frozen towers or heads unused by some batches leave parameters without gradients under DDP.
    unused = getattr(args, "find_unused_parameters", False)
    return NativeBackend(model, optimizer, dist, find_unused_parameters=unused, **common)


def updates_per_epoch_or_fail(loader, args: argparse.Namespace, dist: DistInfo) -> int:
    """Optimizer updates per epoch; a dataset too small for one update is an error, not a silent no-op."""
    per_epoch = updates_per_epoch(loader, args.update_freq, getattr(args, "max_updates_per_epoch", None))
    if per_epoch == 0:
        raise ValueError(
            f"{len(loader.dataset)} training samples give no full batch of {args.batch_size} "
            f"x {args.update_freq} accumulation steps on {dist.world_size} rank(s)"
        )
    return per_epoch


def schedules_from_args(args: argparse.Namespace, optimizer, per_epoch: int, global_batch: int):
    """Per-update cosine lr schedule with linear warmup, and the weight-decay schedule (or None)."""
    warmup = args.warmup_steps if args.warmup_steps > 0 else int(args.warmup_epochs * per_epoch)
    total = args.epochs * per_epoch
    scheduler = build_lr_scheduler(
        optimizer,
        total_steps=total,
        warmup_steps=warmup,
        min_lr=scale_lr(args.min_lr, global_batch),
        warmup_lr=scale_lr(args.warmup_lr, global_batch),
    )
    end = getattr(args, "weight_decay_end", None)
    wd_schedule = WeightDecaySchedule(optimizer, args.weight_decay, end, total) if end is not None else None
    return scheduler, wd_schedule


def trainer_config_from_args(args: argparse.Namespace, best_metric: str | None = None) -> TrainerConfig:
    """Epochs, accumulation, logging/checkpoint intervals and resume (``--auto_resume``) from ``args``."""
    auto = getattr(args, "auto_resume", True) and args.output_dir
    return TrainerConfig(
        epochs=args.epochs,
        output_dir=args.output_dir or None,
        accumulation=args.update_freq,
        max_updates_per_epoch=getattr(args, "max_updates_per_epoch", None),
        log_every=args.steps_per_print,
        save_every=args.save_ckpt_freq,
        resume=getattr(args, "resume", "") or ("auto" if auto else ""),
        best_metric=best_metric,
    )
