"""Video classification fine-tuning and probing, end to end, with the original's arguments.

Every generation's ``run_finetuning.py`` adds its model arguments to
:func:`add_classification_args` and calls :func:`run_classification` with two functions of its
own: ``build_model(args)`` and ``load_pretrained(model, path, args)``. Everything else -- data,
augmentation, optimizer with layer-wise lr decay, schedules, mixup/cutmix, label smoothing, EMA,
DeepSpeed or native training, resume, validation each epoch, and the final multi-view test --
is shared.

Data layout (the original's): ``<data_path>/{train,val,test}.csv`` with rows
``<video path><split><label>``, video paths relative to ``--prefix``; for SSV2 the official
``something-something-v2-{train,validation}.json`` and ``labels.json`` are read too; the
``*_interval`` sets read ``<video path> <total duration> <start> <end> <label>`` rows and sample
the clip inside ``[start, end]`` (seconds).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ivtools.data.annotations import read_interval_list, read_ssv2_json, read_video_list
from ivtools.data.loader import build_loader
from ivtools.data.transforms import DeviceAugment, EvalTransform, TrainTransform, TrainTransformConfig
from ivtools.data.video_dataset import ClipSampling, VideoClassificationDataset
from ivtools.distributed import DistInfo, init_distributed, is_main_process
from ivtools.train.compile import add_compile_argument, maybe_compile
from ivtools.train.evaluation import evaluate_classification
from ivtools.train.setup import (
    backend_from_args,
    global_batch_size,
    optimizer_from_args,
    precision_of,
    schedules_from_args,
    seed_everything,
    trainer_config_from_args,
    updates_per_epoch_or_fail,
)
from ivtools.train.trainer import Trainer

# The original's --data_set choices: how each samples frames and whether flipping is allowed
# (SSv2 labels such as "pushing left to right" change meaning when flipped).
DATASETS = {
    "Kinetics": ("dense", True),
    "Kinetics_sparse": ("sparse", True),
    "mitv1_sparse": ("sparse", True),
    "ANet": ("sparse", True),
    "HACS": ("sparse", True),
    "ANet_interval": ("sparse", True),  # the original's ANetDataset: sparse within [start, end]
    "HACS_interval": ("sparse", True),
    "SSV2": ("segment", False),
    "UCF101": ("segment", True),
    "HMDB51": ("segment", True),
}


def add_classification_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The original ``run_finetuning.py`` arguments that are not model-specific."""
    g = parser.add_argument_group("training")
    g.add_argument("--batch_size", default=64, type=int, help="per-GPU batch size")
    g.add_argument("--epochs", default=30, type=int)
    g.add_argument("--update_freq", default=1, type=int, help="gradient accumulation steps")
    g.add_argument("--save_ckpt_freq", default=100, type=int, help="epochs between checkpoints")
    g.add_argument("--steps_per_print", default=10, type=int)
    g.add_argument("--max_updates_per_epoch", default=None, type=int, help="cap (for smoke runs)")
    g.add_argument("--model_ema", action="store_true")
    g.add_argument("--model_ema_decay", type=float, default=0.9999)
    g = parser.add_argument_group("optimizer")
    g.add_argument("--opt", default="adamw", type=str)
    g.add_argument("--opt_eps", default=1e-8, type=float)
    g.add_argument("--opt_betas", default=None, type=float, nargs="+")
    g.add_argument("--clip_grad", type=float, default=None)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight_decay", type=float, default=0.05)
    g.add_argument("--weight_decay_end", type=float, default=None)
    g.add_argument("--lr", type=float, default=1e-3, help="base lr for a global batch of 256")
    g.add_argument("--layer_decay", type=float, default=0.75)
    g.add_argument("--warmup_lr", type=float, default=1e-6)
    g.add_argument("--min_lr", type=float, default=1e-6)
    g.add_argument("--warmup_epochs", type=float, default=5)
    g.add_argument("--warmup_steps", type=int, default=-1, help="overrides --warmup_epochs when > 0")
    g = parser.add_argument_group("augmentation")
    g.add_argument("--num_sample", type=int, default=2, help="repeated augmentation count")
    g.add_argument(
        "--aa", type=str, default="rand-m7-n4-mstd0.5-inc1", help="timm RandAugment config, 'none' to disable"
    )
    g.add_argument("--smoothing", type=float, default=0.1)
    g.add_argument("--train_interpolation", type=str, default="bicubic")
    g.add_argument("--reprob", type=float, default=0.25)
    g.add_argument("--remode", type=str, default="pixel")
    g.add_argument("--recount", type=int, default=1)
    g.add_argument("--mixup", type=float, default=0.8)
    g.add_argument("--cutmix", type=float, default=1.0)
    g.add_argument("--cutmix_minmax", type=float, nargs="+", default=None)
    g.add_argument("--mixup_prob", type=float, default=1.0)
    g.add_argument("--mixup_switch_prob", type=float, default=0.5)
    g.add_argument("--mixup_mode", type=str, default="batch")
    g.add_argument(
        "--device_augment",
        action="store_true",
        help="do RandAugment, normalise and random erasing on the training device, on the batch; "
        "workers only decode, crop and flip",
    )
    g = parser.add_argument_group("data")
    g.add_argument("--data_set", default="Kinetics", choices=sorted(DATASETS))
    g.add_argument("--data_path", default="", type=str, help="folder with train/val/test lists")
    g.add_argument("--prefix", default="", type=str, help="root joined to the video paths")
    g.add_argument("--split", default=" ", type=str, help="column separator of the lists")
    g.add_argument("--nb_classes", default=400, type=int)
    g.add_argument("--num_frames", type=int, default=16)
    g.add_argument("--sampling_rate", type=int, default=4)
    g.add_argument("--input_size", default=224, type=int)
    g.add_argument("--short_side_size", type=int, default=224)
    g.add_argument("--test_num_segment", type=int, default=5)
    g.add_argument("--test_num_crop", type=int, default=3)
    g.add_argument("--video_backend", default="auto", help="ivtools.video backend")
    g.add_argument("--decode_threads", default=1, type=int, help="FFmpeg threads per video decoder")
    g.add_argument("--num_workers", default=10, type=int)
    g.add_argument("--pin_mem", action="store_true", default=True)
    g.add_argument("--no_pin_mem", action="store_false", dest="pin_mem")
    g = parser.add_argument_group("checkpoints and evaluation")
    g.add_argument("--finetune", default="", help="initialise from this checkpoint")
    g.add_argument("--output_dir", default="", help="checkpoints and logs")
    g.add_argument("--resume", default="", help="a checkpoint path, or 'auto' for the latest in --output_dir")
    g.add_argument("--auto_resume", action="store_true", default=True)
    g.add_argument("--no_auto_resume", action="store_false", dest="auto_resume")
    g.add_argument("--eval", action="store_true", help="only run the multi-view test")
    g.add_argument("--disable_eval_during_finetuning", action="store_true")
    g.add_argument("--test_best", action="store_true", help="final test with the best validation checkpoint")
    g.add_argument("--dist_eval", action="store_true", default=True, help="kept for compatibility: always on")
    g = parser.add_argument_group("hardware")
    g.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    g.add_argument("--seed", default=0, type=int)
    g.add_argument("--enable_deepspeed", action="store_true")
    g.add_argument("--zero_stage", default=0, type=int)
    g.add_argument(
        "--stage3_param_persistence_threshold",
        default=None,
        type=int,
        help="ZeRO-3: parameters with fewer elements stay whole on every rank (default: DeepSpeed's; 0: partition all)",
    )
    g.add_argument("--bf16", action="store_true")
    add_compile_argument(g)
    g.add_argument("--fp16", action="store_true")
    return parser


def _records(args, split: str):
    data = Path(args.data_path)
    if args.data_set == "SSV2" and (data / "labels.json").is_file():
        name = {"train": "train", "val": "validation", "test": "validation"}[split]
        return read_ssv2_json(data / f"something-something-v2-{name}.json", data / "labels.json", args.prefix)
    listing = data / f"{split}.csv"
    if split == "test" and not listing.is_file() and (data / "val.csv").is_file():
        # Kinetics-style releases often ship no separate test list; the original then tests on val.
        if is_main_process():
            print(f"{listing} not found: testing on {data / 'val.csv'}", flush=True)
        listing = data / "val.csv"
    reader = read_interval_list if args.data_set.endswith("_interval") else read_video_list
    return reader(listing, sep=args.split, prefix=args.prefix, num_classes=args.nb_classes)


def train_transform_config(args) -> TrainTransformConfig:
    """The training augmentation of ``args`` (shared by the workers and ``DeviceAugment``)."""
    if args.data_set not in DATASETS:
        raise ValueError(f"unknown --data_set {args.data_set!r}; choose from {sorted(DATASETS)}")
    return TrainTransformConfig(
        input_size=args.input_size,
        min_scale=getattr(args, "min_scale", 0.08),
        flip=DATASETS[args.data_set][1],
        rand_augment=None if args.aa in ("", "none", None) else args.aa,
        reprob=args.reprob,
        remode=args.remode,
        recount=args.recount,
        interpolation=args.train_interpolation,
        device_augment=getattr(args, "device_augment", False),
    )


def build_classification_datasets(args) -> dict[str, VideoClassificationDataset]:
    """Train / val / test datasets from ``args`` (the test one has all multi-view views)."""
    train_tf = TrainTransform(train_transform_config(args))
    clip = ClipSampling(
        DATASETS[args.data_set][0],
        args.num_frames,
        args.sampling_rate,
        args.test_num_segment,
        args.test_num_crop,
    )
    common = {
        "clip": clip,
        "num_classes": args.nb_classes,
        "seed": args.seed,
        "backend": args.video_backend,
        "decode_threads": getattr(args, "decode_threads", 1),
    }
    datasets = {}
    if not args.eval:
        datasets["train"] = VideoClassificationDataset(
            _records(args, "train"), "train", transform=train_tf, num_sample=args.num_sample, **common
        )
        if not args.disable_eval_during_finetuning:
            val_tf = EvalTransform(args.input_size, args.short_side_size, 1)
            datasets["val"] = VideoClassificationDataset(
                _records(args, "val"), "val", transform=val_tf, **common
            )
    test_tf = EvalTransform(args.input_size, args.short_side_size, args.test_num_crop)
    datasets["test"] = VideoClassificationDataset(_records(args, "test"), "test", transform=test_tf, **common)
    return datasets


class VideoMixup:
    """timm's Mixup/CutMix on ``(B, C, T, H, W)`` clips: one box for every frame of a clip."""

    def __init__(self, args):
        from timm.data import Mixup

        self.mixup = Mixup(
            mixup_alpha=args.mixup,
            cutmix_alpha=args.cutmix,
            cutmix_minmax=args.cutmix_minmax,
            prob=args.mixup_prob,
            switch_prob=args.mixup_switch_prob,
            mode=args.mixup_mode,
            label_smoothing=args.smoothing,
            num_classes=args.nb_classes,
        )

    def __call__(self, video: torch.Tensor, target: torch.Tensor):
        b, c, t, h, w = video.shape
        # timm boxes the last two dims of a 4-D batch: fold time into channels.
        mixed, soft = self.mixup(video.reshape(b, c * t, h, w), target)
        return mixed.reshape(b, c, t, h, w), soft


def build_criterion(args) -> nn.Module:
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if args.mixup > 0 or args.cutmix > 0 or args.cutmix_minmax is not None:
        return SoftTargetCrossEntropy()
    if args.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=args.smoothing)
    return nn.CrossEntropyLoss()


def classification_step_fn(
    criterion: nn.Module, mixup: VideoMixup | None, device_augment: DeviceAugment | None = None
):
    """The training step; ``device_augment`` finishes the uint8 batches of ``device_augment`` workers."""

    def step(model, batch, backend):
        video = backend.prepare(batch["video"])
        if device_augment is not None:
            # prepare moved the uint8 batch as it is; the second call gives the augmented float
            # batch the backend's input dtype (bf16/fp16 under DeepSpeed).
            video = backend.prepare(device_augment(video))
        target = batch["label"].to(video.device, non_blocking=True)
        hard_target = target
        if mixup is not None:
            video, target = mixup(video, target)
        logits = model(video)
        loss = criterion(logits.float(), target)
        metrics = {}
        if mixup is None:
            metrics["acc"] = (logits.argmax(dim=1) == hard_target).float().mean() * 100
        return loss, metrics

    return step


def _evaluator(dataset, args, backend, dist: DistInfo, prefix: str):
    loader = build_loader(dataset, args.batch_size, train=False, num_workers=args.num_workers, seed=args.seed)
    input_dtype = (
        {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision_of(args))
        if args.enable_deepspeed
        else None
    )

    def evaluate(model):
        return evaluate_classification(
            model,
            loader,
            num_videos=len(dataset.records),
            num_classes=args.nb_classes,
            device=dist.device,
            autocast=backend.autocast,
            input_dtype=input_dtype,
            prefix=prefix,
        )

    return evaluate


def _check_zero3_options(args) -> None:
    """``--stage3_param_persistence_threshold`` is a ZeRO-3 setting: refuse it anywhere else."""
    if args.stage3_param_persistence_threshold is not None and not (
        args.enable_deepspeed and args.zero_stage == 3
    ):
        raise ValueError("--stage3_param_persistence_threshold needs --enable_deepspeed --zero_stage 3")


def run_classification(
    args,
    build_model: Callable[[argparse.Namespace], nn.Module],
    load_pretrained: Callable[[nn.Module, str, argparse.Namespace], None] | None = None,
) -> dict:
    """Fine-tune (or, with ``--eval``, only test) a video classifier; returns the final metrics."""
    dist = init_distributed(args.device)
    seed_everything(args.seed, dist.rank)
    datasets = build_classification_datasets(args)
    model = build_model(args)
    if args.finetune and load_pretrained is not None:
        load_pretrained(model, args.finetune, args)
    maybe_compile(model, args, dist.device)

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    global_batch = global_batch_size(args, dist)
    optimizer = optimizer_from_args(args, model, global_batch)
    _check_zero3_options(args)
    backend = backend_from_args(args, model, optimizer, dist)
    if is_main_process():
        print(f"model: {trainable / 1e6:.2f}M trainable parameters; global batch {global_batch}", flush=True)

    results: dict = {}
    if not args.eval:
        train_loader = build_loader(
            datasets["train"],
            args.batch_size,
            train=True,
            num_workers=args.num_workers,
            seed=args.seed,
            pin_memory=args.pin_mem,
        )
        per_epoch = updates_per_epoch_or_fail(train_loader, args, dist)
        scheduler, wd_schedule = schedules_from_args(args, optimizer, per_epoch, global_batch)
        ema = None
        if args.model_ema:
            from timm.utils import ModelEmaV3

            ema = ModelEmaV3(backend.module, decay=args.model_ema_decay)
        mixup = VideoMixup(args) if (args.mixup > 0 or args.cutmix > 0 or args.cutmix_minmax) else None
        evaluate_fn = _evaluator(datasets["val"], args, backend, dist, "val_") if "val" in datasets else None
        cfg = trainer_config_from_args(args, best_metric="val_top1" if evaluate_fn is not None else None)
        trainer = Trainer(
            backend,
            train_loader,
            classification_step_fn(
                build_criterion(args),
                mixup,
                DeviceAugment(train_transform_config(args))
                if getattr(args, "device_augment", False)
                else None,
            ),
            cfg,
            dist,
            lr_scheduler=scheduler,
            wd_schedule=wd_schedule,
            ema=ema,
            evaluate_fn=evaluate_fn,
        )
        history = trainer.fit()
        if trainer.preemption.requested:
            return {"preempted": True, "history": history}
        results["history"] = history
        if args.test_best and trainer.checkpoints is not None and trainer.checkpoints.path("best").exists():
            trainer.checkpoints.load(trainer.checkpoints.path("best"))

    results.update(_evaluator(datasets["test"], args, backend, dist, "test_")(backend.module))
    if is_main_process():
        summary = {k: v for k, v in results.items() if k != "history"}
        print("final test: " + json.dumps(summary), flush=True)
        if args.output_dir:
            Path(args.output_dir).mkdir(parents=True, exist_ok=True)
            (Path(args.output_dir) / "test_results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return results
