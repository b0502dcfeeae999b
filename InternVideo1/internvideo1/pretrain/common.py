"""What the pretraining entry points share: run and optimisation arguments, the trainer set-up (from
``ivtools.train.setup``) and the train-then-retrieve flow of the video-text models."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from ivtools.data.loader import build_loader
from ivtools.distributed import DistInfo, init_distributed, is_main_process
from ivtools.train import setup
from ivtools.train.trainer import StepFn, Trainer

from ..data.video_text import VideoTextDataset, read_video_text_json
from ..downstream.retrieval import evaluate_video_text_retrieval
from ..tokenizer import ClipBPETokenizer


def add_run_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Output, resume, device, seed and precision arguments (the original's names)."""
    g = parser.add_argument_group("run")
    g.add_argument("--output_dir", default="")
    g.add_argument("--resume", default="", help="checkpoint path or 'auto'")
    g.add_argument("--device", default=None)
    g.add_argument("--seed", default=0, type=int)
    g.add_argument("--enable_deepspeed", action="store_true")
    g.add_argument("--zero_stage", default=0, type=int)
    g.add_argument("--bf16", action="store_true")
    g.add_argument("--fp16", action="store_true")
    return parser


def add_optimisation_args(parser: argparse.ArgumentParser, **defaults) -> argparse.ArgumentParser:
    """The arguments :func:`build_pretraining_trainer` reads (the original's names); ``defaults``
    are each entry point's own (``lr=1.5e-4, epochs=800`` ...). ``lr`` is for a global batch of 256
    and is scaled to the real one."""
    g = parser.add_argument_group("optimisation")
    g.add_argument("--batch_size", default=32, type=int)
    g.add_argument("--epochs", default=10, type=int)
    g.add_argument("--update_freq", default=1, type=int)
    g.add_argument("--max_updates_per_epoch", default=None, type=int)
    g.add_argument("--opt", default="adamw")
    g.add_argument("--opt_eps", default=1e-8, type=float)
    g.add_argument("--opt_betas", default=None, type=float, nargs="+")
    g.add_argument("--lr", default=1e-4, type=float, help="for a global batch of 256")
    g.add_argument("--min_lr", default=1e-6, type=float)
    g.add_argument("--warmup_lr", default=1e-6, type=float)
    g.add_argument("--warmup_epochs", default=1, type=float)
    g.add_argument("--warmup_steps", default=-1, type=int, help="overrides --warmup_epochs when > 0")
    g.add_argument("--weight_decay", default=0.05, type=float)
    g.add_argument("--weight_decay_end", default=None, type=float)
    g.add_argument("--clip_grad", default=None, type=float)
    g.add_argument("--save_ckpt_freq", default=1, type=int)
    g.add_argument("--steps_per_print", default=10, type=int)
    g.add_argument("--num_workers", default=4, type=int)
    parser.set_defaults(**defaults)
    return parser


def build_pretraining_trainer(
    args, model: torch.nn.Module, dataset: Dataset, step_fn: StepFn, dist: DistInfo
) -> Trainer:
    """Loader, optimizer (lr scaled to the global batch), backend, warm-up + cosine schedule, Trainer."""
    loader = build_loader(dataset, args.batch_size, train=True, num_workers=args.num_workers, seed=args.seed)
    global_batch = setup.global_batch_size(args, dist)
    optimizer = setup.optimizer_from_args(args, model, global_batch)
    backend = setup.backend_from_args(args, model, optimizer, dist)
    per_epoch = setup.updates_per_epoch_or_fail(loader, args, dist)
    scheduler, wd_schedule = setup.schedules_from_args(args, optimizer, per_epoch, global_batch)
    return Trainer(
        backend,
        loader,
        step_fn,
        setup.trainer_config_from_args(args),
        dist,
        lr_scheduler=scheduler,
        wd_schedule=wd_schedule,
    )


def train_then_retrieve(
    args, build_model: Callable[[argparse.Namespace], torch.nn.Module], step_fn: StepFn
) -> dict:
    """Build a video-text model, train it on ``--train_file`` (unless ``--evaluate``), then run
    retrieval on ``--test_file``; returns the retrieval metrics and, after training, ``history``."""
    dist = init_distributed(args.device)
    setup.seed_everything(args.seed, dist.rank)
    tokenizer = ClipBPETokenizer(args.bpe_path)
    model = build_model(args).to(dist.device)
    results: dict = {}
    if not args.evaluate:
        if not args.train_file:
            raise ValueError("--train_file is required for training (or pass --evaluate)")
        records = read_video_text_json(args.train_file, args.prefix)
        data = VideoTextDataset.from_args(records, tokenizer, args, train=True)
        trainer = build_pretraining_trainer(args, model, data, step_fn, dist)
        results["history"] = trainer.fit()
        model = trainer.backend.module
    if args.test_file and is_main_process():
        records = read_video_text_json(args.test_file, args.prefix)
        test = VideoTextDataset.from_args(records, tokenizer, args)
        with torch.no_grad():
            results.update(evaluate_video_text_retrieval(model, test, tokenizer))
        metrics = {k: round(v, 2) for k, v in results.items() if k != "history"}
        print("retrieval: " + json.dumps(metrics), flush=True)
    return results


def add_video_text_data_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Data arguments of :func:`train_then_retrieve` (ViCLIP's and the multi-modality model's names)."""
    g = parser.add_argument_group("data")
    g.add_argument("--bpe_path", required=True, help="CLIP's bpe_simple_vocab_16e6.txt.gz")
    g.add_argument("--max_txt_l", default=32, type=int, help="text context length")
    g.add_argument("--train_file", default="", help="JSON list of {video, caption}")
    g.add_argument("--test_file", default="", help="JSON list for retrieval evaluation")
    g.add_argument("--prefix", default="")
    g.add_argument("--video_backend", default="auto")
    g.add_argument("--evaluate", action="store_true", help="only run retrieval on --test_file")
    return parser
