"""What the VideoMAE and ViCLIP pretraining entry points share: run arguments and the trainer set-up."""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import Dataset

from ivtools.data.loader import build_loader
from ivtools.distributed import DistInfo
from ivtools.train.optim import build_lr_scheduler, build_optimizer, scale_lr
from ivtools.train.setup import backend_from_args
from ivtools.train.trainer import StepFn, Trainer, TrainerConfig, updates_per_epoch


def add_run_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Output, resume, device, seed and precision arguments (the original's names)."""
    g = parser.add_argument_group("run")
    g.add_argument("--output_dir", default="")
    g.add_argument("--resume", default="", help="checkpoint path or 'auto'")
    g.add_argument("--device", default=None)
    g.add_argument("--seed", default=0, type=int)
    g.add_argument("--enable_deepspeed", action="store_true")
    g.add_argument("--zero_stage", default=0, type=int)
    g.add_argument("--bf16", action="store_true")
    g.add_argument("--fp16", action="store_true")
    parser.set_defaults(num_sample=1)  # read by the shared backend factory
    return parser


def add_optimisation_args(
    parser: argparse.ArgumentParser, lr: float, min_lr: float, warmup_lr: float, weight_decay: float
) -> argparse.ArgumentParser:
    """The arguments :func:`build_pretraining_trainer` reads (the original's names); ``lr`` is for a
    global batch of 256 and is scaled to the real one."""
    g = parser.add_argument_group("optimisation")
    g.add_argument("--batch_size", default=32, type=int)
    g.add_argument("--epochs", default=10, type=int)
    g.add_argument("--update_freq", default=1, type=int)
    g.add_argument("--max_updates_per_epoch", default=None, type=int)
    g.add_argument("--opt", default="adamw")
    g.add_argument("--lr", default=lr, type=float, help="for a global batch of 256")
    g.add_argument("--min_lr", default=min_lr, type=float)
    g.add_argument("--warmup_lr", default=warmup_lr, type=float)
    g.add_argument("--warmup_epochs", default=1, type=float)
    g.add_argument("--weight_decay", default=weight_decay, type=float)
    g.add_argument("--clip_grad", default=None, type=float)
    g.add_argument("--save_ckpt_freq", default=1, type=int)
    g.add_argument("--steps_per_print", default=10, type=int)
    g.add_argument("--num_workers", default=4, type=int)
    return parser


def build_pretraining_trainer(
    args, model: torch.nn.Module, dataset: Dataset, step_fn: StepFn, dist: DistInfo, betas=None
) -> Trainer:
    """Loader, AdamW (lr scaled to the global batch), backend, warm-up + cosine schedule, Trainer."""
    loader = build_loader(dataset, args.batch_size, train=True, num_workers=args.num_workers, seed=args.seed)
    global_batch = args.batch_size * args.update_freq * dist.world_size
    optimizer = build_optimizer(
        model, args.opt, lr=scale_lr(args.lr, global_batch), weight_decay=args.weight_decay, betas=betas
    )
    backend = backend_from_args(args, model, optimizer, dist)
    per_epoch = updates_per_epoch(loader, args.update_freq, args.max_updates_per_epoch)
    if per_epoch == 0:
        raise ValueError(
            f"{len(dataset)} samples give no full batch of {args.batch_size} x {args.update_freq}"
        )
    scheduler = build_lr_scheduler(
        optimizer,
        total_steps=args.epochs * per_epoch,
        warmup_steps=int(args.warmup_epochs * per_epoch),
        min_lr=scale_lr(args.min_lr, global_batch),
        warmup_lr=scale_lr(args.warmup_lr, global_batch),
    )
    cfg = TrainerConfig(
        epochs=args.epochs,
        output_dir=args.output_dir or None,
        accumulation=args.update_freq,
        max_updates_per_epoch=args.max_updates_per_epoch,
        log_every=args.steps_per_print,
        save_every=args.save_ckpt_freq,
        resume=args.resume or ("auto" if args.output_dir else ""),
    )
    return Trainer(backend, loader, step_fn, cfg, dist, lr_scheduler=scheduler)
