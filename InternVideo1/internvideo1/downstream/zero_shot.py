"""Zero-shot action recognition with a video-text encoder (ViCLIP or the multi-modality model).

Each class name is put into prompt templates ("A video of {}" ...); a class's text feature is the
mean of its prompts' L2-normalised features, so a video's score for the class is the mean cosine
similarity over the prompts (the original ViCLIP evaluation's "mean" aggregation over its
:data:`ACTION_TEMPLATES`). Videos are read as in retrieval: ``num_frames`` frames, the middle
of each equal segment, a centre crop.

Data are Kinetics-style: a list file of ``<video> <label>`` rows and a class-name file with one
name per line (line ``i`` = label ``i``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from internvideo1.data.video_text import VideoText, VideoTextDataset
from internvideo1.downstream.encoders import add_encoder_args, encode_texts, encoder_from_args
from internvideo1.downstream.metrics import topk_accuracy
from internvideo1.downstream.retrieval import encode_dataset_videos
from internvideo1.tokenizer import ClipBPETokenizer
from ivtools.data.annotations import read_class_names, read_video_list
from ivtools.distributed import init_distributed

# The prompts the original's ViCLIP action-recognition evaluation averages over (its
# ``kinetics_templates_action_clip``).
ACTION_TEMPLATES = (
    "a photo of action {}",
    "a picture of action {}",
    "Human action of {}",
    "{}, an action",
    "{} this is an action",
    "{}, a video of action",
    "Playing action of {}",
    "{}",
    "Playing a kind of action, {}",
    "Doing a kind of action, {}",
    "Look, the human is {}",
    "Can you recognize the action of {}?",
    "Video classification of {}",
    "A video of {}",
    "The man is {}",
    "The woman is {}",
)


def class_text_features(
    model: nn.Module, tokenizer: Callable, class_names: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """``(C, D)``: per class, the mean of its prompts' normalised text features (not renormalised,
    so that ``video · class`` is the mean cosine over the prompts)."""
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"every template needs a '{{}}' for the class name, got {list(templates)}")
    prompts = [t.format(name) for name in class_names for t in templates]
    feats = encode_texts(model, tokenizer, prompts)
    return feats.view(len(class_names), len(templates), -1).mean(1)


def zero_shot_scores(video_feats: torch.Tensor, class_feats: torch.Tensor) -> torch.Tensor:
    """``(V, C)`` mean cosine similarities of video features ``(V, D)`` (any scale) with the classes."""
    return F.normalize(video_feats.float(), dim=-1) @ class_feats.float().t()


def zero_shot_predict(scores: torch.Tensor, topk: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over ``100 * scores`` (CLIP's logit scale) → ``(probs, labels)`` of the ``topk`` best."""
    probs = (100.0 * scores).softmax(dim=-1)
    return probs.topk(min(topk, probs.shape[1]), dim=-1)


def add_zero_shot_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_encoder_args(parser)
    g = parser.add_argument_group("zero-shot classification")
    g.add_argument("--data_path", required=True, help="list file of '<video> <label>' rows")
    g.add_argument("--class_names", required=True, help="one class name per line; line i is label i")
    g.add_argument("--prefix", default="", help="root joined to relative video paths")
    g.add_argument("--split", default=" ", help="column separator of the list file")
    g.add_argument(
        "--templates", default=list(ACTION_TEMPLATES), nargs="+", help="prompts with '{}' for the class"
    )
    g.add_argument("--batch_size", default=8, type=int)
    g.add_argument("--video_backend", default="auto")
    g.add_argument("--device", default=None)
    g.add_argument("--output_json", default="", help="also write the metrics and per-video top-5 here")
    return parser


def run_zero_shot(args) -> dict:
    """Top-1/top-5 accuracy of zero-shot classification over ``--data_path``."""
    dist = init_distributed(args.device)
    class_names = read_class_names(args.class_names)
    records = read_video_list(
        args.data_path, sep=args.split, prefix=args.prefix, num_classes=len(class_names)
    )
    tokenizer = ClipBPETokenizer(args.bpe_path)
    model = encoder_from_args(args).to(dist.device)
    videos = VideoTextDataset.from_args(
        [VideoText(r.path, (class_names[r.label],)) for r in records], tokenizer, args
    )
    scores = zero_shot_scores(
        encode_dataset_videos(model, videos, args.batch_size),
        class_text_features(model, tokenizer, class_names, args.templates),
    ).cpu()
    labels = torch.tensor([r.label for r in records])
    top1, top5 = topk_accuracy(scores, labels, ks=(1, 5))
    results = {"top1": top1, "top5": top5, "num_videos": len(records)}
    print("zero-shot: " + json.dumps(results), flush=True)
    if args.output_json:
        _, top = zero_shot_predict(scores)
        predictions = {r.path: top[i].tolist() for i, r in enumerate(records)}
        Path(args.output_json).write_text(json.dumps({**results, "top5_labels": predictions}, indent=1))
    return results
