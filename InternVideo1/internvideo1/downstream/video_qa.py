"""Video question answering over a (frozen or fine-tuned) video-text encoder.

* Multiple choice (MSR-VTT-MC / LSMDC-MC style): each candidate, prefixed by the question when
  there is one, is scored by its cosine similarity with the video; the best one is the answer.
  Annotations: ``[{"video", "caption": [candidates], "answer": index, "question"?: str}]``.
* Open-ended (MSRVTT-QA / MSVD-QA / TGIF-QA style): classification over an answer vocabulary
  (the most frequent training answers). The answer head reads the cross-modality decoder's
  end-of-text feature of (video, question) when the encoder has ``encode_fused`` (the
  multi-modality model), else the fusion ``[v, q, v * q]`` of the two embeddings. Annotations:
  ``[{"video", "question", "answer": str}]``; questions whose answer is outside the vocabulary are
  left out of training and count as wrong in evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from internvideo1.data.video_text import VideoText, VideoTextDataset
from internvideo1.downstream.encoders import add_encoder_args, encode_texts, encoder_from_args
from internvideo1.downstream.retrieval import encode_dataset_videos
from internvideo1.pretrain.common import add_optimisation_args, add_run_args, build_pretraining_trainer
from internvideo1.tokenizer import ClipBPETokenizer
from ivtools.data.loader import build_loader
from ivtools.distributed import init_distributed, is_main_process
from ivtools.train.setup import seed_everything


def _read_json_list(path: str | os.PathLike, required: Sequence[str]) -> list[dict]:
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read QA annotations {path}: {err}") from err
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON list")
    for i, entry in enumerate(entries):
        missing = [k for k in required if k not in entry]
        if missing:
            raise ValueError(f"{path}: entry {i} lacks {missing}")
    return entries


def _video_path(video: str, prefix: str) -> str:
    return video if os.path.isabs(video) or not prefix else os.path.join(prefix, video)


@dataclass(frozen=True)
class MultipleChoiceItem:
    video: str
    candidates: tuple[str, ...]
    answer: int


def read_multiple_choice_json(path: str | os.PathLike, prefix: str = "") -> list[MultipleChoiceItem]:
    items = []
    for i, entry in enumerate(_read_json_list(path, ("video", "caption", "answer"))):
        question = entry.get("question", "")
        candidates = tuple(f"{question} {c}".strip() for c in entry["caption"])
        answer = int(entry["answer"])
        if not 0 <= answer < len(candidates):
            raise ValueError(
                f"{path}: entry {i} answer {answer} is not one of its {len(candidates)} candidates"
            )
        items.append(MultipleChoiceItem(_video_path(entry["video"], prefix), candidates, answer))
    return items


def multiple_choice_predictions(
    video_feats: torch.Tensor, candidate_feats: list[torch.Tensor]
) -> torch.Tensor:
    """Index of the candidate most similar (cosine) to each video."""
    video_feats = F.normalize(video_feats.float(), dim=-1)
    return torch.stack(
        [(F.normalize(c.float(), dim=-1) @ v).argmax() for v, c in zip(video_feats, candidate_feats)]
    )


def evaluate_multiple_choice(
    model: nn.Module, items: list[MultipleChoiceItem], video_dataset, tokenizer: Callable, batch_size: int = 8
) -> dict[str, float]:
    """Accuracy (%) of zero-shot multiple choice; ``video_dataset[i]["video"]`` is item ``i``'s clip."""
    video_feats = encode_dataset_videos(model, video_dataset, batch_size)
    candidate_feats = [encode_texts(model, tokenizer, item.candidates) for item in items]
    pred = multiple_choice_predictions(video_feats, candidate_feats)
    truth = torch.tensor([item.answer for item in items])
    return {"mc_accuracy": 100.0 * (pred == truth).float().mean().item()}


def build_answer_vocab(answers: Sequence[str], max_answers: int) -> list[str]:
    """The ``max_answers`` most frequent answers (ties alphabetical), most frequent first."""
    counts = Counter(answers)
    return sorted(counts, key=lambda a: (-counts[a], a))[:max_answers]


@dataclass
class OpenEndedQA:
    records: list[VideoText]  # question as the single caption, for VideoTextDataset
    labels: torch.Tensor  # answer index, -100 when outside the vocabulary
    answers: list[str]


def read_open_ended_json(
    path: str | os.PathLike, prefix: str = "", answer_vocab: list[str] | None = None, max_answers: int = 1000
) -> OpenEndedQA:
    """Questions and labels; the vocabulary is built from this file unless ``answer_vocab`` is given."""
    entries = _read_json_list(path, ("video", "question", "answer"))
    answers = [str(e["answer"]).strip().lower() for e in entries]
    vocab = answer_vocab if answer_vocab is not None else build_answer_vocab(answers, max_answers)
    index = {a: i for i, a in enumerate(vocab)}
    records = [VideoText(_video_path(e["video"], prefix), (str(e["question"]),)) for e in entries]
    labels = torch.tensor([index.get(a, -100) for a in answers])
    return OpenEndedQA(records, labels, vocab)


class OpenEndedQAModel(nn.Module):
    """Encoder + answer classifier (the original's VQA head: Linear, LayerNorm, GELU, Linear)."""

    def __init__(self, encoder: nn.Module, num_answers: int, freeze_encoder: bool = True):
        super().__init__()
        self.encoder, self.freeze_encoder = encoder, freeze_encoder
        self.fused = hasattr(encoder, "encode_fused")
        if self.fused:
            in_dim = encoder.text_encoder.transformer.width
        else:
            in_dim = 3 * encoder.embed_dim
        self.head = nn.Sequential(
            nn.Linear(in_dim, 2 * in_dim),
            nn.LayerNorm(2 * in_dim),
            nn.GELU(),
            nn.Linear(2 * in_dim, num_answers),
        )
        if freeze_encoder:
            encoder.requires_grad_(False)

    @property
    def context_length(self) -> int:
        return self.encoder.context_length

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def features(self, video: torch.Tensor, question_ids: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            if self.fused:
                tokens = self.encoder.encode_fused(video, question_ids)
                # The end-of-text token (the largest id) has attended to the whole question.
                return tokens[torch.arange(tokens.shape[0], device=tokens.device), question_ids.argmax(-1)]
            v = F.normalize(self.encoder.encode_video(video).float(), dim=-1)
            q = F.normalize(self.encoder.encode_text(question_ids).float(), dim=-1)
            return torch.cat([v, q, v * q], dim=-1)

    def forward(self, video: torch.Tensor, question_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(video, question_ids))


def qa_step_fn(labels: torch.Tensor):
    """``step(model, batch, backend)``: cross-entropy against each item's answer index."""

    def step(model, batch, backend):
        video = backend.prepare(batch["video"])
        target = labels[batch["index"]].to(video.device)
        logits = model(video, batch["text_ids"].to(video.device))
        loss = F.cross_entropy(logits.float(), target, ignore_index=-100)
        return loss, {}

    return step


@torch.no_grad()
def evaluate_open_ended(
    model: OpenEndedQAModel, loader, labels: torch.Tensor, device: torch.device
) -> dict[str, float]:
    """Accuracy (%) over every question (out-of-vocabulary answers count as wrong)."""
    model.eval()
    correct = total = 0
    for batch in loader:
        logits = model(batch["video"].to(device), batch["text_ids"].to(device))
        target = labels[batch["index"]].to(device)
        correct += int((logits.argmax(-1) == target).sum())
        total += len(target)
    return {"qa_accuracy": 100.0 * correct / max(total, 1)}


def add_qa_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_encoder_args(parser)
    g = parser.add_argument_group("video QA")
    g.add_argument("--task", choices=["mc", "open"], required=True, help="multiple choice or open-ended")
    g.add_argument("--train_file", default="", help="open-ended: training questions (JSON)")
    g.add_argument("--test_file", required=True)
    g.add_argument("--prefix", default="")
    g.add_argument("--max_answers", default=1000, type=int, help="open-ended answer vocabulary size")
    g.add_argument("--finetune_encoder", action="store_true", help="open-ended: train the encoder too")
    g.add_argument("--video_backend", default="auto")
    add_optimisation_args(parser, lr=1e-4, min_lr=1e-6, warmup_lr=1e-6, weight_decay=0.02)
    return add_run_args(parser)


def run_video_qa(args) -> dict:
    """Zero-shot multiple choice, or training + evaluation of the open-ended answer classifier."""
    dist = init_distributed(args.device)
    seed_everything(args.seed, dist.rank)
    tokenizer = ClipBPETokenizer(args.bpe_path)
    encoder = encoder_from_args(args).to(dist.device)
    if args.task == "mc":
        items = read_multiple_choice_json(args.test_file, args.prefix)
        videos = VideoTextDataset.from_args(
            [VideoText(i.video, i.candidates) for i in items], tokenizer, args
        )
        results = evaluate_multiple_choice(encoder, items, videos, tokenizer)
    else:
        if not args.train_file:
            raise ValueError("--train_file is required for open-ended QA")
        train = read_open_ended_json(args.train_file, args.prefix, max_answers=args.max_answers)
        test = read_open_ended_json(args.test_file, args.prefix, answer_vocab=train.answers)
        model = OpenEndedQAModel(encoder, len(train.answers), freeze_encoder=not args.finetune_encoder)
        train_set = VideoTextDataset.from_args(train.records, tokenizer, args, train=True)
        test_loader = build_loader(
            VideoTextDataset.from_args(test.records, tokenizer, args),
            args.batch_size,
            train=False,
            num_workers=args.num_workers,
        )
        trainer = build_pretraining_trainer(args, model, train_set, qa_step_fn(train.labels), dist)
        trainer.evaluate_fn = lambda m: evaluate_open_ended(m, test_loader, test.labels, dist.device)
        history = trainer.fit()
        results = {"history": history, **history[-1]}
    if is_main_process():
        print("video QA: " + json.dumps({k: v for k, v in results.items() if k != "history"}), flush=True)
    return results
