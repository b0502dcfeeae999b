"""Video-text retrieval with a dual encoder (ViCLIP, or the multi-modality model).

Any model with ``encode_video(clip)``, ``encode_text(ids)`` and ``context_length`` works. Every
caption of a video is a query (MSR-VTT/DiDeMo/LSMDC style JSON with ``caption`` lists); the
text→video and video→text recalls come from :func:`metrics.retrieval_recall`. With
``dual_softmax`` the similarities are re-weighted by a softmax over the other modality before
ranking (the original's "DSL" inference trick): for text→video each video's softmax over all
texts, for video→text each text's softmax over all videos.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from internvideo1.data.video_text import VideoTextDataset, read_video_text_json
from internvideo1.downstream.encoders import add_encoder_args, encode_texts, encoder_from_args
from internvideo1.downstream.metrics import retrieval_recall
from internvideo1.tokenizer import ClipBPETokenizer
from ivtools.distributed import init_distributed


def dual_softmax(sim: torch.Tensor, temperature: float, dim: int) -> torch.Tensor:
    """``sim * softmax(temperature * sim, dim)``: a match only scores high if it is mutual."""
    return sim * F.softmax(temperature * sim, dim=dim)


def retrieval_from_similarity(
    sim: torch.Tensor,
    text_to_video: Sequence[int] | None = None,
    dual_softmax_temperature: float | None = None,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Recall in both directions from a ``(texts, videos)`` similarity matrix, optionally DSL-weighted."""
    if dual_softmax_temperature is None:
        return retrieval_recall(sim, text_to_video, ks)
    t2v = retrieval_recall(dual_softmax(sim, dual_softmax_temperature, 0), text_to_video, ks)
    v2t = retrieval_recall(dual_softmax(sim, dual_softmax_temperature, 1), text_to_video, ks)
    out = {k: v for k, v in t2v.items() if k.startswith("t2v")}
    out.update({k: v for k, v in v2t.items() if k.startswith("v2t")})
    out["mean_r"] = sum(out[f"{d}_r{k}"] for d in ("t2v", "v2t") for k in ks) / (2 * len(ks))
    return out


def retrieval_from_features(
    video_feats: torch.Tensor,
    text_feats: torch.Tensor,
    text_to_video: Sequence[int] | None = None,
    dual_softmax_temperature: float | None = None,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Recall from video ``(V, D)`` and text ``(T, D)`` features (any scale; cosine similarity)."""
    sim = F.normalize(text_feats.float(), dim=-1) @ F.normalize(video_feats.float(), dim=-1).t()
    return retrieval_from_similarity(sim, text_to_video, dual_softmax_temperature, ks)


@torch.no_grad()
def encode_dataset_videos(model: nn.Module, dataset, batch_size: int = 8) -> torch.Tensor:
    """Video features ``(N, D)`` of every item of an evaluation dataset (``item["video"]``)."""
    model.eval()
    device = next(model.parameters()).device
    feats = []
    for start in range(0, len(dataset), batch_size):
        clips = torch.stack(
            [dataset[i]["video"] for i in range(start, min(start + batch_size, len(dataset)))]
        )
        feats.append(model.encode_video(clips.to(device)).float())
    return torch.cat(feats)


def evaluate_video_text_retrieval(
    model: nn.Module,
    dataset,
    tokenizer: Callable,
    batch_size: int = 8,
    dual_softmax_temperature: float | None = None,
) -> dict[str, float]:
    """Retrieval over ``dataset.records`` (each with ``captions``), every caption a query."""
    texts, text_to_video = [], []
    for v, record in enumerate(dataset.records):
        texts.extend(record.captions)
        text_to_video.extend([v] * len(record.captions))
    video_feats = encode_dataset_videos(model, dataset, batch_size)
    text_feats = encode_texts(model, tokenizer, texts)
    return retrieval_from_features(video_feats, text_feats, text_to_video, dual_softmax_temperature)


def add_retrieval_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_encoder_args(parser)
    g = parser.add_argument_group("retrieval")
    g.add_argument("--test_file", required=True, help="JSON list of {video, caption: str | [str]}")
    g.add_argument("--prefix", default="")
    g.add_argument(
        "--dual_softmax", default=None, type=float, help="DSL temperature (e.g. 100); off when unset"
    )
    g.add_argument("--batch_size", default=8, type=int)
    g.add_argument("--video_backend", default="auto")
    g.add_argument("--device", default=None)
    g.add_argument("--output_json", default="", help="also write the metrics here")
    return parser


def run_retrieval(args) -> dict[str, float]:
    """Zero-shot (or fine-tuned-checkpoint) retrieval over ``--test_file``."""
    dist = init_distributed(args.device)
    tokenizer = ClipBPETokenizer(args.bpe_path)
    model = encoder_from_args(args).to(dist.device)
    dataset = VideoTextDataset.from_args(read_video_text_json(args.test_file, args.prefix), tokenizer, args)
    results = evaluate_video_text_retrieval(model, dataset, tokenizer, args.batch_size, args.dual_softmax)
    print("retrieval: " + json.dumps({k: round(v, 2) for k, v in results.items()}), flush=True)
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(results, indent=1))
    return results
