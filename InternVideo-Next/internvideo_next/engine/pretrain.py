"""What both pretraining stages share: the student, the data, the optimizer and the Trainer."""

from __future__ import annotations

import argparse

import timm
from torch import nn

import internvideo_next.models  # noqa: F401  (registers the factories)
from internvideo_next.data.pretrain import build_pretrain_dataset
from internvideo_next.models import build_semantic_decoder
from ivtools.data import build_loader
from ivtools.distributed import DistInfo, init_distributed, is_main_process
from ivtools.train import Trainer
from ivtools.train.setup import (
    backend_from_args,
    global_batch_size,
    optimizer_from_args,
    schedules_from_args,
    seed_everything,
    trainer_config_from_args,
    updates_per_epoch_or_fail,
)


def build_student(args: argparse.Namespace, **extra) -> nn.Module:
    bert = build_semantic_decoder(args.bert_path, args.bert_keep_layers, **args.bert_kwargs)
    kwargs = {
        "num_frames": args.num_frames,
        "img_size": args.input_size,
        "tubelet_size": args.tubelet_size,
        "drop_path_rate": args.drop_path,
        "init_values": args.layer_scale_init_value,
        "layerscale_no_force_fp32": args.layerscale_no_force_fp32,
        "use_checkpoint": args.use_checkpoint,
        "checkpoint_num": args.checkpoint_num,
        "cls_token_num": args.cls_token_num,
        **extra,
        **args.model_kwargs,
    }
    return timm.create_model(args.model, bert_decoder=bert, **kwargs)


def run_pretraining(
    args: argparse.Namespace,
    model: nn.Module,
    step,
    dist: DistInfo,
    ema=None,
) -> list[dict]:
    """Train ``model`` with ``step(model, batch, backend)``; checkpoints and resume in ``--output_dir``."""
    dataset = build_pretrain_dataset(
        args.data_path,
        args.num_frames,
        args.input_size,
        args.flip,
        args.prefix,
        args.split,
        args.seed,
        args.video_backend,
    )
    loader = build_loader(dataset, args.batch_size, train=True, num_workers=args.num_workers, seed=args.seed)
    per_epoch = updates_per_epoch_or_fail(loader, args, dist)
    global_batch = global_batch_size(args, dist)
    optimizer = optimizer_from_args(args, model, global_batch)
    backend = backend_from_args(args, model, optimizer, dist)
    scheduler, wd = schedules_from_args(args, optimizer, per_epoch, global_batch)
    cfg = trainer_config_from_args(args)
    trainer = Trainer(backend, loader, step, cfg, dist, lr_scheduler=scheduler, wd_schedule=wd, ema=ema)
    step.trainer = trainer
    if is_main_process():
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(
            f"{args.model}: {trainable / 1e6:.2f}M trainable parameters; global batch {global_batch}",
            flush=True,
        )
    return trainer.fit()


def prepare_run(args: argparse.Namespace) -> DistInfo:
    dist = init_distributed(args.device)
    seed_everything(args.seed, dist.rank)
    return dist
