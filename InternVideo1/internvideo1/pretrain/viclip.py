"""ViCLIP training glue: the contrastive step, the model from arguments, train-then-retrieve.

Data: :mod:`internvideo1.data.video_text`; zero-shot classification: :mod:`internvideo1.downstream.zero_shot`.
"""

from __future__ import annotations

import argparse

import timm

from ..models.viclip import ViCLIP, load_viclip_checkpoint
from .common import add_optimisation_args, add_run_args, add_video_text_data_args, train_then_retrieve


def viclip_step_fn():
    """``step(model, batch, backend)``: the video-text contrastive loss; pairs sharing a video
    index are all positives (the original's ``idx``)."""

    def step(model, batch, backend):
        video = backend.prepare(batch["video"])
        ids = batch["text_ids"].to(video.device)
        idx = batch["index"].to(video.device)
        loss = model(video, ids, idx)["loss_vtc"]
        temp = getattr(model, "module", model).temp
        return loss, {"temp": temp.detach()}

    return step


def add_viclip_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="viclip_l14", choices=["viclip_b16", "viclip_l14"])
    g.add_argument("--pretrained", default="", help="a released ViCLIP checkpoint to start from")
    g.add_argument("--num_frames", default=8, type=int)
    g.add_argument("--input_size", default=224, type=int)
    g.add_argument("--masking_prob", default=0.9, type=float)
    g.add_argument("--drop_path", default=0.1, type=float)
    g.add_argument("--checkpoint_num", default=0, type=int, help="blocks with gradient checkpointing")
    g.add_argument("--train_text", action="store_true", help="the text tower is frozen unless given")
    add_video_text_data_args(parser)
    add_optimisation_args(parser, lr=4e-6, min_lr=1e-7, warmup_lr=1e-7, weight_decay=0.02)
    return add_run_args(parser)


def build_viclip_from_args(args) -> ViCLIP:
    model = timm.create_model(
        args.model,
        num_frames=args.num_frames,
        input_resolution=args.input_size,
        context_length=args.max_txt_l,
        drop_path=args.drop_path,
        checkpoint_num=args.checkpoint_num,
        masking_prob=args.masking_prob,
        freeze_text=not args.train_text,
    )
    if args.pretrained:
        load_viclip_checkpoint(model, args.pretrained)
    return model


def run_viclip(args) -> dict:
    """Train ViCLIP on ``--train_file`` (unless ``--evaluate``), then evaluate retrieval on ``--test_file``."""
    return train_then_retrieve(args, build_viclip_from_args, viclip_step_fn())
