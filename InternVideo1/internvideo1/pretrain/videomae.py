"""VideoMAE pretraining (masked tubelet reconstruction) and fine-tuning glue for ``ivtools.train``.

Pretraining data: the original's list files (``<video path><sep><label>``, the label unused),
dense clips of ``num_frames x sampling_rate``, multi-scale random crops and flips, ImageNet
normalisation. A tube mask per sample is drawn in the step function from a generator seeded by
``--seed`` and the rank, so that a run is reproducible.
"""

from __future__ import annotations

import argparse

import numpy as np
import timm
import torch

from ivtools.data.annotations import read_video_list
from ivtools.data.masking import MASK_GENERATORS, build_mask_generator
from ivtools.data.transforms import TrainTransform, TrainTransformConfig
from ivtools.data.video_dataset import ClipSampling, VideoClassificationDataset
from ivtools.distributed import init_distributed, is_main_process
from ivtools.train.classification import add_classification_args
from ivtools.train.setup import seed_everything

from ..losses import mae_loss, mae_targets
from ..models.videomae import load_videomae_checkpoint, resolve_finetune_name
from .common import add_optimisation_args, add_run_args, build_pretraining_trainer


def add_videomae_pretraining_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The original ``run_mae_pretraining.py`` arguments (those this implementation uses)."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="pretrain_mae_base_patch16_224")
    g.add_argument("--decoder_depth", default=4, type=int)
    g.add_argument("--mask_type", default="tube", choices=sorted(MASK_GENERATORS))
    g.add_argument("--mask_ratio", default=0.75, type=float)
    g.add_argument("--input_size", default=224, type=int)
    g.add_argument("--drop_path", default=0.0, type=float)
    g.add_argument("--normlize_target", default=True, type=lambda s: str(s).lower() in ("1", "true", "yes"))
    g.add_argument("--with_checkpoint", action="store_true", help="gradient checkpointing")
    g.add_argument("--resume_from", default="", help="initialise from a VideoMAE pretraining checkpoint")
    g = parser.add_argument_group("data")
    g.add_argument("--data_path", required=True, help="list file of training videos")
    g.add_argument("--prefix", default="")
    g.add_argument("--split", default=" ")
    g.add_argument("--num_frames", default=16, type=int)
    g.add_argument("--sampling_rate", default=4, type=int)
    g.add_argument("--video_backend", default="auto")
    add_optimisation_args(
        parser,
        batch_size=64,
        epochs=800,
        save_ckpt_freq=50,
        opt_betas=[0.9, 0.95],
        lr=1.5e-4,
        min_lr=1e-5,
        warmup_epochs=40,
        num_workers=10,
    )
    return add_run_args(parser)


def build_pretraining_model(args) -> torch.nn.Module:
    return timm.create_model(
        args.model,
        img_size=args.input_size,
        num_frames=args.num_frames,
        decoder_depth=args.decoder_depth,
        drop_path_rate=args.drop_path,
        with_cp=args.with_checkpoint,
    )


def build_pretraining_dataset(args) -> VideoClassificationDataset:
    records = read_video_list(args.data_path, sep=args.split, prefix=args.prefix)
    # The original's GroupMultiScaleCrop uses scales (1, .875, .75, .66) of the short side: a
    # random resized crop over that area range with near-square boxes stands in for it.
    transform = TrainTransform(
        TrainTransformConfig(
            input_size=args.input_size,
            min_scale=0.66**2,
            aspect_ratio=(0.75, 1.333),
            flip=True,
            rand_augment=None,
            reprob=0.0,
        )
    )
    clip = ClipSampling("dense", args.num_frames, args.sampling_rate, 1, 1)
    return VideoClassificationDataset(
        records, "train", clip, transform, seed=args.seed, backend=args.video_backend
    )


def mae_step_fn(
    mask_generator, patch_size: int, tubelet_size: int, normalize_target: bool = True, seed: int = 0
):
    """``step(model, batch, backend) -> (loss, metrics)`` for VideoMAE pretraining."""
    rng = np.random.default_rng(seed)

    def step(model, batch, backend):
        video = backend.prepare(batch["video"])
        mask = torch.from_numpy(np.stack([mask_generator(rng) for _ in range(video.shape[0])])).to(
            video.device
        )
        targets = mae_targets(video.float(), patch_size, tubelet_size, normalize_target=normalize_target)
        pred = model(video, mask)
        return mae_loss(pred, targets, mask), {}

    return step


def run_videomae_pretraining(args) -> list[dict]:
    """Pretrain a VideoMAE model on ``args.data_path``; returns the per-epoch history."""
    dist = init_distributed(args.device)
    seed_everything(args.seed, dist.rank)
    model = build_pretraining_model(args)
    if args.resume_from:
        load_videomae_checkpoint(model, args.resume_from)
    patch = model.patch_embed.patch_size[0]
    tubelet = model.patch_embed.tubelet_size
    window = (args.num_frames // tubelet, args.input_size // patch, args.input_size // patch)
    masks = build_mask_generator(args.mask_type, window, args.mask_ratio)
    dataset = build_pretraining_dataset(args)
    if is_main_process():
        print(f"{args.model}: {masks}; {len(dataset)} videos", flush=True)
    step = mae_step_fn(masks, patch, tubelet, args.normlize_target, seed=args.seed + dist.rank)
    return build_pretraining_trainer(args, model, dataset, step, dist).fit()


def add_videomae_finetune_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Model arguments of the original ``run_class_finetuning.py`` (the rest: ivtools' classification args)."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="vit_base_patch16_224", help="original or videomae_-prefixed name")
    g.add_argument("--tubelet_size", default=2, type=int)
    g.add_argument("--drop", default=0.0, type=float)
    g.add_argument("--attn_drop_rate", default=0.0, type=float)
    g.add_argument("--drop_path", default=0.1, type=float)
    g.add_argument("--head_drop_rate", default=0.0, type=float)
    g.add_argument("--init_scale", default=0.001, type=float)
    g.add_argument("--use_mean_pooling", default=True, action="store_true")
    g.add_argument("--use_cls", action="store_false", dest="use_mean_pooling")
    g.add_argument("--use_checkpoint", action="store_true")
    g.add_argument("--model_key", default="model|module")
    return parser


def build_finetune_model(args) -> torch.nn.Module:
    return timm.create_model(
        resolve_finetune_name(args.model),
        img_size=args.input_size,
        num_classes=args.nb_classes,
        all_frames=args.num_frames,
        tubelet_size=args.tubelet_size,
        drop_rate=args.drop,
        attn_drop_rate=args.attn_drop_rate,
        drop_path_rate=args.drop_path,
        head_drop_rate=args.head_drop_rate,
        init_scale=args.init_scale,
        use_mean_pooling=args.use_mean_pooling,
        with_cp=args.use_checkpoint,
    )


def load_finetune_pretrained(model: torch.nn.Module, path: str, args) -> None:
    load_videomae_checkpoint(model, path, model_key=args.model_key)


def add_videomae_linear_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Linear probing (the original's ``run_class_linear.py``): fine-tuning's model and
    classification arguments, with linear-probing defaults (SGD on the head, no layer decay, no
    mixup / cutmix / label smoothing / RandAugment / erasing, no drop-path)."""
    add_classification_args(add_videomae_finetune_args(parser))
    parser.set_defaults(
        drop_path=0.0,
        opt="sgd",
        lr=0.1,
        weight_decay=0.0,
        layer_decay=1.0,
        mixup=0.0,
        cutmix=0.0,
        smoothing=0.0,
        aa="none",
        reprob=0.0,
    )
    return parser


def build_linear_probe_model(args) -> torch.nn.Module:
    """The fine-tuning ViT with every parameter but the classifier ``head`` frozen: the probe reads
    the pooled (mean + ``fc_norm``) feature of the pretrained encoder."""
    model = build_finetune_model(args)
    model.requires_grad_(False)
    model.head.requires_grad_(True)
    return model
