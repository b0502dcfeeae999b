"""Fine-tuning and attentive probing on action recognition through ``ivtools.train.classification``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import timm
import torch

import internvideo_next.models  # noqa: F401  (registers the factories)
from internvideo_next.configs.pretrain_args import json_dict
from internvideo_next.models import InternVideoNextClassifier
from ivtools.checkpoint import (
    LoadReport,
    interpolate_pos_embed,
    load_matching,
    load_state_dict_file,
    strip_prefix,
    unwrap_state_dict,
)
from ivtools.distributed import is_main_process
from ivtools.train.classification import add_classification_args, run_classification


def add_model_args(parser: argparse.ArgumentParser, mode: str) -> argparse.ArgumentParser:
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="internvideo_next_base_patch14_224")
    g.add_argument("--model_kwargs", type=json_dict, default={}, help="JSON overrides of the encoder config")
    g.add_argument("--drop_path", type=float, default=0.1 if mode == "finetune" else 0.0)
    g.add_argument("--head_drop_rate", type=float, default=0.0)
    g.add_argument("--tubelet_size", type=int, default=1)
    g.add_argument("--cls_token_num", type=int, default=4)
    g.add_argument("--probe_num_heads", type=int, default=16, help="heads of the probe's attention pool")
    g.add_argument("--model_key", default="model|module", help="checkpoint keys to unwrap, '|'-separated")
    parser.set_defaults(classifier_mode=mode)
    return parser


def build_model(args: argparse.Namespace) -> InternVideoNextClassifier:
    encoder = timm.create_model(
        args.model,
        num_frames=args.num_frames,
        img_size=args.input_size,
        tubelet_size=args.tubelet_size,
        drop_path_rate=args.drop_path,
        cls_token_num=args.cls_token_num,
        **args.model_kwargs,
    )
    return InternVideoNextClassifier(
        encoder, args.nb_classes, args.classifier_mode, args.head_drop_rate, args.probe_num_heads
    )


def load_pretrained(model: InternVideoNextClassifier, path: str, args: argparse.Namespace) -> LoadReport:
    """Released encoder weights, or a stage-1/2 checkpoint's trunk, into ``model.encoder``.

    Pretraining-only tensors (decoders, diffusion head, ModernBERT, extra position tables) are
    reported as unexpected and ignored; the position table is resampled to this run's grid.
    """
    state = unwrap_state_dict(load_state_dict_file(path), keys=args.model_key.split("|"))
    state = strip_prefix(strip_prefix(state, "module."), "encoder.")
    encoder = model.encoder
    if "pos_embed" in state and state["pos_embed"].shape != encoder.pos_embed.shape:
        state["pos_embed"] = _resample(state["pos_embed"], encoder)
    report = load_matching(encoder, state)
    if not report.loaded:
        raise ValueError(f"{path}: no tensor matches the encoder of {args.model} (check --model_key)")
    if is_main_process():
        print(report.summary(path), flush=True)
    return report


def _resample(table: torch.Tensor, encoder) -> torch.Tensor:
    n = encoder.cls_token_num
    tokens = table.shape[1] - n
    # Released tables are 16 frames on a square grid.
    for frames in (16, 8, encoder.num_frames):
        side = round((tokens / frames) ** 0.5)
        if frames * side * side == tokens:
            return interpolate_pos_embed(table, n, (frames, side, side), encoder.grid_size)
    raise ValueError(
        f"cannot infer the grid of a pos_embed with {tokens} patch rows (width {table.shape[-1]})"
    )


def main(mode: str, argv: Sequence[str] | None = None, description: str = "") -> dict:
    """``run_finetuning.py`` (``mode='finetune'``) / ``run_attentive_probing.py`` (``'probe'``)."""
    parser = add_model_args(add_classification_args(argparse.ArgumentParser(description=description)), mode)
    return run_classification(parser.parse_args(argv), build_model, load_pretrained)
