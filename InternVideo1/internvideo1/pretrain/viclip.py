"""ViCLIP: video-text data, the contrastive training step, zero-shot classification and retrieval.

Annotations are the original's JSON lists: ``[{"video": path, "caption": str | [str, ...]}, ...]``
(paths relative to ``prefix``). Training draws one of a video's captions at random and ``num_frames``
frames, one from each equal segment (the original's "rand" sampling); evaluation takes the middle
frame of each segment and a centre crop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
from torch.utils.data import Dataset

from ivtools.data.transforms import EvalTransform, TrainTransform, TrainTransformConfig
from ivtools.data.video_dataset import seeded
from ivtools.distributed import init_distributed, is_main_process
from ivtools.train.setup import seed_everything
from ivtools.video import VideoReadError, open_video, segment_indices

from ..models.viclip import ViCLIP, load_viclip_checkpoint
from ..tokenizer import ClipBPETokenizer
from .common import add_run_args, build_pretraining_trainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoText:
    path: str
    captions: tuple[str, ...]


def read_video_text_json(path: str | os.PathLike, prefix: str = "") -> list[VideoText]:
    """``[{"video": ..., "caption": str | list}]`` → records; errors name the file and entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of {{'video', 'caption'}} objects")
    records = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "video" not in entry or "caption" not in entry:
            raise ValueError(f"{path}: entry {i} needs 'video' and 'caption', got {entry!r}")
        captions = entry["caption"] if isinstance(entry["caption"], list) else [entry["caption"]]
        if not captions or not all(isinstance(c, str) for c in captions):
            raise ValueError(f"{path}: entry {i} has no caption string")
        video = (
            entry["video"]
            if os.path.isabs(entry["video"]) or not prefix
            else os.path.join(prefix, entry["video"])
        )
        records.append(VideoText(video, tuple(captions)))
    if not records:
        raise ValueError(f"{path}: no entries")
    return records


class VideoTextDataset(Dataset):
    """Items ``{"video": (3, T, H, W), "text_ids": (L,), "index", "skipped"}``.

    In training an unreadable video is replaced by another one (counted in ``skipped``); in
    evaluation it raises, since retrieval needs every video.
    """

    def __init__(
        self,
        records: Sequence[VideoText],
        tokenizer: Callable,
        train: bool,
        num_frames: int = 8,
        input_size: int = 224,
        context_length: int = 32,
        seed: int = 0,
        backend: str = "auto",
        max_retries: int = 20,
    ):
        self.records, self.tokenizer, self.train = list(records), tokenizer, train
        self.num_frames, self.context_length, self.seed = num_frames, context_length, seed
        self.backend, self.max_retries, self.epoch = backend, max_retries, 0
        if train:
            cfg = TrainTransformConfig(input_size=input_size, min_scale=0.5, rand_augment=None, reprob=0.0)
            self.transform = TrainTransform(cfg)
        else:
            self.transform = EvalTransform(input_size, input_size, 1)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _frames(self, record: VideoText, rng) -> np.ndarray:
        with open_video(record.path, backend=self.backend) as video:
            return video.get_frames(segment_indices(len(video), self.num_frames, rng=rng))

    def _item(self, index: int, record: VideoText, frames: np.ndarray, caption: str, skipped: int) -> dict:
        ids, _ = self.tokenizer([caption], self.context_length)
        return {"video": self.transform(frames), "text_ids": ids[0], "index": index, "skipped": skipped}

    def __getitem__(self, key) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        if not self.train:
            record = self.records[index]
            return self._item(index, record, self._frames(record, None), record.captions[0], 0)
        for attempt in range(self.max_retries):
            with seeded((self.seed, epoch, index, attempt)) as rng:
                record = self.records[index]
                try:
                    frames = self._frames(record, rng)
                except VideoReadError as err:
                    logger.warning("skipping unreadable video: %s", err)
                    index = int(rng.integers(len(self.records)))
                    continue
                caption = record.captions[int(rng.integers(len(record.captions)))]
                return self._item(index, record, frames, caption, attempt)
        raise RuntimeError(f"{self.max_retries} unreadable videos in a row; check the annotation paths")


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


@torch.no_grad()
def encode_videos(model: ViCLIP, videos: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """L2-normalised video features ``(N, D)`` of ``(N, 3, T, H, W)`` clips."""
    model.eval()
    feats = [model.encode_video(videos[i : i + batch_size]) for i in range(0, len(videos), batch_size)]
    return torch.nn.functional.normalize(torch.cat(feats).float(), dim=-1)


@torch.no_grad()
def encode_texts(
    model: ViCLIP, tokenizer: Callable, texts: Sequence[str], batch_size: int = 64
) -> torch.Tensor:
    """L2-normalised text features ``(N, D)``."""
    model.eval()
    device = next(model.parameters()).device
    feats = []
    for i in range(0, len(texts), batch_size):
        ids, _ = tokenizer(list(texts[i : i + batch_size]), model.context_length)
        feats.append(model.encode_text(ids.to(device)))
    return torch.nn.functional.normalize(torch.cat(feats).float(), dim=-1)


def zero_shot_classifier(
    model: ViCLIP, tokenizer: Callable, class_names: Sequence[str], templates: Sequence[str] = ("{}",)
) -> torch.Tensor:
    """Class embeddings ``(C, D)``: the normalised mean over ``templates`` (``"a video of {}."``...)."""
    weights = []
    for name in class_names:
        feats = encode_texts(model, tokenizer, [t.format(name) for t in templates])
        weights.append(torch.nn.functional.normalize(feats.mean(0), dim=-1))
    return torch.stack(weights)


def zero_shot_predict(video_feats: torch.Tensor, class_weights: torch.Tensor, topk: int = 5):
    """Softmax over ``100 * cos`` (the original's scale) → ``(probs, labels)`` of the top ``k``."""
    probs = (100.0 * video_feats @ class_weights.t()).softmax(dim=-1)
    return probs.topk(min(topk, probs.shape[1]), dim=-1)


def retrieval_metrics(sim: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k (in %) from a similarity matrix ``(N_video, N_text)`` whose i-th text describes
    the i-th video: ``t2v_r{k}``, ``v2t_r{k}``, their means and ``r_mean``."""
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(
            f"retrieval needs a square similarity matrix (pair i = video i, text i), got {tuple(sim.shape)}"
        )
    truth = torch.arange(sim.shape[0], device=sim.device)

    def ranks(scores: torch.Tensor) -> torch.Tensor:
        # How many candidates score strictly higher than the right one.
        correct = scores[truth, truth][:, None]
        return (scores > correct).sum(1)

    v2t, t2v = ranks(sim), ranks(sim.t())
    out = {}
    for k in ks:
        out[f"v2t_r{k}"] = (v2t < k).float().mean().item() * 100
        out[f"t2v_r{k}"] = (t2v < k).float().mean().item() * 100
    out["v2t_r_mean"] = sum(out[f"v2t_r{k}"] for k in ks) / len(ks)
    out["t2v_r_mean"] = sum(out[f"t2v_r{k}"] for k in ks) / len(ks)
    out["r_mean"] = (out["v2t_r_mean"] + out["t2v_r_mean"]) / 2
    return out


def evaluate_retrieval(
    model: ViCLIP, dataset: VideoTextDataset, tokenizer: Callable, batch_size: int = 8
) -> dict:
    """Zero-shot video-text retrieval over a dataset's videos and first captions."""
    device = next(model.parameters()).device
    videos = torch.stack([dataset[i]["video"] for i in range(len(dataset))]).to(device)
    video_feats = encode_videos(model, videos, batch_size)
    text_feats = encode_texts(model, tokenizer, [r.captions[0] for r in dataset.records])
    return retrieval_metrics(video_feats @ text_feats.t())


def add_viclip_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="viclip_l14", choices=["viclip_b16", "viclip_l14"])
    g.add_argument("--pretrained", default="", help="a released ViCLIP checkpoint to start from")
    g.add_argument("--bpe_path", required=True, help="CLIP's bpe_simple_vocab_16e6.txt.gz")
    g.add_argument("--num_frames", default=8, type=int)
    g.add_argument("--input_size", default=224, type=int)
    g.add_argument("--max_txt_l", default=32, type=int)
    g.add_argument("--masking_prob", default=0.9, type=float)
    g.add_argument("--drop_path", default=0.1, type=float)
    g.add_argument("--checkpoint_num", default=0, type=int, help="blocks with gradient checkpointing")
    g.add_argument("--train_text", action="store_true", help="the text tower is frozen unless given")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--batch_size", default=32, type=int)
    g.add_argument("--epochs", default=10, type=int)
    g.add_argument("--update_freq", default=1, type=int)
    g.add_argument("--max_updates_per_epoch", default=None, type=int)
    g.add_argument("--opt", default="adamw")
    g.add_argument("--lr", default=4e-6, type=float, help="for a global batch of 256")
    g.add_argument("--min_lr", default=1e-7, type=float)
    g.add_argument("--warmup_lr", default=1e-7, type=float)
    g.add_argument("--warmup_epochs", default=1, type=float)
    g.add_argument("--weight_decay", default=0.02, type=float)
    g.add_argument("--clip_grad", default=None, type=float)
    g.add_argument("--save_ckpt_freq", default=1, type=int)
    g.add_argument("--steps_per_print", default=10, type=int)
    g = parser.add_argument_group("data")
    g.add_argument("--train_file", default="", help="JSON list of {video, caption}")
    g.add_argument("--test_file", default="", help="JSON list for retrieval evaluation")
    g.add_argument("--prefix", default="")
    g.add_argument("--video_backend", default="auto")
    g.add_argument("--num_workers", default=4, type=int)
    parser.add_argument("--evaluate", action="store_true", help="only run retrieval on --test_file")
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
    dist = init_distributed(args.device)
    seed_everything(args.seed, dist.rank)
    tokenizer = ClipBPETokenizer(args.bpe_path)
    model = build_viclip_from_args(args).to(dist.device)
    common = {"num_frames": args.num_frames, "input_size": args.input_size, "context_length": args.max_txt_l}
    results: dict = {}
    if not args.evaluate:
        if not args.train_file:
            raise ValueError("--train_file is required for training (or pass --evaluate)")
        data = VideoTextDataset(
            read_video_text_json(args.train_file, args.prefix),
            tokenizer,
            True,
            seed=args.seed,
            backend=args.video_backend,
            **common,
        )
        trainer = build_pretraining_trainer(args, model, data, viclip_step_fn(), dist)
        results["history"] = trainer.fit()
        model = trainer.backend.module
    if args.test_file and is_main_process():
        test = VideoTextDataset(
            read_video_text_json(args.test_file, args.prefix),
            tokenizer,
            False,
            backend=args.video_backend,
            **common,
        )
        results.update(evaluate_retrieval(model, test, tokenizer))
        print(
            "retrieval: " + json.dumps({k: round(v, 2) for k, v in results.items() if k != "history"}),
            flush=True,
        )
    return results
