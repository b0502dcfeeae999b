"""Training and evaluation of the temporal action localizer, end to end.

``run_localization(args)`` reads the annotations and features, trains with the shared
:class:`ivtools.train.Trainer` (AdamW, warm-up + cosine, checkpoints, ``--resume auto``) and
reports detection mAP at the dataset's tIoU thresholds after every ``--eval_every`` epochs.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from internvideo1.downstream.localization import (
    ActionLocalizer,
    LocalizerConfig,
    decode_detections,
    localization_loss,
)
from internvideo1.downstream.localization_data import (
    FeatureSequenceDataset,
    collate_sequences,
    read_activitynet_json,
    steps_to_seconds,
)
from internvideo1.downstream.metrics import ANET_TIOUS, THUMOS_TIOUS, Segment, detection_map
from ivtools.data.loader import ResumableSampler
from ivtools.distributed import init_distributed
from ivtools.train.backend import NativeBackend
from ivtools.train.optim import build_lr_scheduler, build_optimizer
from ivtools.train.trainer import Trainer, TrainerConfig, updates_per_epoch

TIOU_PRESETS = {"thumos": THUMOS_TIOUS, "anet": ANET_TIOUS}


def add_localization_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("data")
    g.add_argument("--annotations", required=True, help="ActivityNet-style JSON")
    g.add_argument("--feature_dir", required=True)
    g.add_argument("--feature_prefix", default="")
    g.add_argument("--feature_suffix", default=".npy")
    g.add_argument("--channels_first", action="store_true", help="feature files are (C, T)")
    g.add_argument("--train_subset", default="training")
    g.add_argument("--val_subset", default="validation")
    g.add_argument("--max_seq_len", type=int, default=2304)
    g.add_argument("--tious", default="thumos", help="'thumos' (0.3:0.7), 'anet' (0.5:0.95) or a comma list")
    g = parser.add_argument_group("model")
    g.add_argument("--embed_dim", type=int, default=256)
    g.add_argument("--num_levels", type=int, default=6)
    g.add_argument("--nms_method", default="soft", choices=["soft", "hard"])
    g.add_argument("--nms_iou", type=float, default=0.5)
    g.add_argument("--nms_sigma", type=float, default=0.5)
    g.add_argument("--max_detections", type=int, default=200)
    g = parser.add_argument_group("training")
    g.add_argument("--batch_size", type=int, default=2)
    g.add_argument("--epochs", type=int, default=30)
    g.add_argument("--lr", type=float, default=1e-4)
    g.add_argument("--weight_decay", type=float, default=0.05)
    g.add_argument("--warmup_epochs", type=int, default=5)
    g.add_argument("--clip_grad", type=float, default=1.0)
    g.add_argument("--num_workers", type=int, default=4)
    g.add_argument("--eval_every", type=int, default=1)
    g.add_argument("--output_dir", default="")
    g.add_argument("--resume", default="auto")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default=None)
    return parser


def parse_tious(text: str) -> tuple[float, ...]:
    if text in TIOU_PRESETS:
        return TIOU_PRESETS[text]
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError as err:
        raise ValueError(
            f"--tious {text!r}: expected 'thumos', 'anet' or numbers separated by commas"
        ) from err
    if not values or any(not 0 < v <= 1 for v in values):
        raise ValueError(f"--tious {text!r}: thresholds must lie in (0, 1]")
    return values


def localization_loader(
    dataset: FeatureSequenceDataset,
    cfg: LocalizerConfig,
    batch_size: int,
    train: bool,
    num_workers: int = 0,
    seed: int = 0,
) -> DataLoader:
    """Batches padded to the pyramid's stride, over a resumable (distributed) sampler."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ResumableSampler(len(dataset), shuffle=train, seed=seed),
        collate_fn=partial(collate_sequences, multiple=cfg.max_stride),
        drop_last=train,
        num_workers=num_workers,
    )


def localization_step_fn(cfg: LocalizerConfig):
    def step(model, batch, backend):
        out = model(backend.prepare(batch["feats"]), backend.prepare(batch["mask"]))
        return localization_loss(out, batch["segments"], batch["labels"], cfg)

    return step


@torch.no_grad()
def predict_segments(model: ActionLocalizer, loader, device: torch.device) -> list[Segment]:
    """All detections of ``loader``'s videos, in seconds (clipped to each video)."""
    model.eval()
    out = []
    for batch in loader:
        results = decode_detections(model(batch["feats"].to(device), batch["mask"].to(device)), model.cfg)
        for (segs, scores, labels), video, step, duration in zip(
            results, batch["video"], batch["step"], batch["duration"]
        ):
            secs = steps_to_seconds(segs, step).clamp(0, duration)
            out.extend(
                Segment(video, float(s), float(e), int(c), float(p))
                for (s, e), p, c in zip(secs.tolist(), scores.tolist(), labels.tolist())
            )
    return out


def evaluate_localization(model: ActionLocalizer, loader, device: torch.device, tious) -> dict[str, float]:
    videos = loader.dataset.videos
    truth = [
        Segment(v.video, float(s), float(e), int(c))
        for v in videos
        for (s, e), c in zip(v.segments, v.labels)
    ]
    return detection_map(
        truth, predict_segments(model, loader, device), tious, num_classes=model.cfg.num_classes
    )


def run_localization(args: argparse.Namespace) -> list[dict]:
    """Train (``--epochs`` > 0) and evaluate; returns the per-epoch records."""
    torch.manual_seed(args.seed)
    dist = init_distributed(args.device)
    tious = parse_tious(args.tious)
    train_videos, classes = read_activitynet_json(args.annotations, args.train_subset)
    val_videos, _ = read_activitynet_json(args.annotations, args.val_subset, classes)
    data_kw = {
        "prefix": args.feature_prefix,
        "suffix": args.feature_suffix,
        "channels_first": args.channels_first,
    }
    train_set = FeatureSequenceDataset(
        train_videos, args.feature_dir, True, args.max_seq_len, seed=args.seed, **data_kw
    )
    val_set = FeatureSequenceDataset(val_videos, args.feature_dir, False, **data_kw)
    input_dim = train_set[0]["feats"].shape[0]
    cfg = LocalizerConfig(
        input_dim=input_dim,
        num_classes=len(classes),
        embed_dim=args.embed_dim,
        num_levels=args.num_levels,
        nms_method=args.nms_method,
        nms_iou=args.nms_iou,
        nms_sigma=args.nms_sigma,
        max_detections=args.max_detections,
    )
    model = ActionLocalizer(cfg)
    train_loader = localization_loader(train_set, cfg, args.batch_size, True, args.num_workers, args.seed)
    val_loader = localization_loader(val_set, cfg, 1, False, num_workers=args.num_workers)
    optimizer = build_optimizer(model, "adamw", lr=args.lr, weight_decay=args.weight_decay)
    backend = NativeBackend(model, optimizer, dist, clip_grad=args.clip_grad)
    steps = updates_per_epoch(train_loader)
    if steps == 0:
        raise ValueError(f"{len(train_set)} training videos give no full batch of {args.batch_size}")
    scheduler = build_lr_scheduler(
        optimizer, steps * args.epochs, args.warmup_epochs * steps, min_lr=args.lr * 1e-3
    )
    trainer = Trainer(
        backend,
        train_loader,
        localization_step_fn(cfg),
        TrainerConfig(
            epochs=args.epochs,
            output_dir=args.output_dir or None,
            eval_every=args.eval_every,
            best_metric="average_mAP",
            resume=args.resume,
            tensorboard=False,
        ),
        dist,
        lr_scheduler=scheduler,
        evaluate_fn=lambda m: evaluate_localization(m, val_loader, dist.device, tious),
    )
    history = trainer.fit()
    if args.output_dir and dist.is_main:
        Path(args.output_dir, "history.json").write_text(json.dumps(history, indent=1))
    return history
