"""Stage-2 training and zero-shot retrieval evaluation driven by a multi-modality config.

``run_pretrain(cfg)`` is the original's ``tasks/pretrain.py`` (VTC + VTM + MLM on video-text
corpora, evaluation on the ``test_file`` sets after each epoch, checkpoints and ``auto_resume``
through :class:`ivtools.train.Trainer`); ``run_retrieval(cfg)`` is ``tasks/retrieval.py`` with
``evaluate=True`` (zero-shot evaluation of a checkpoint on every ``test_file`` set).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import replace
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from internvideo2.mm.build import build_model, build_tokenizer, load_for_evaluation, load_pretrained_parts
from internvideo2.mm.config import SOURCE_KEY, ConfigError, optional, require
from internvideo2.mm.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MediaBatchDataset,
    RetrievalDataset,
    Tokenize,
    VideoTextTrainDataset,
    load_annotations,
    test_transform,
    train_transform,
)
from internvideo2.mm.retrieval import FRAME_ENSEMBLES, evaluate_retrieval
from ivtools.data import build_loader
from ivtools.distributed import DistInfo, init_distributed
from ivtools.train import Trainer, WarmupCosineMultiplier, build_optimizer
from ivtools.train.setup import (
    backend_from_args,
    seed_everything,
    trainer_config_from_args,
    updates_per_epoch_or_fail,
)

logger = logging.getLogger(__name__)


def _norm_stats(cfg: DictConfig) -> tuple[tuple, tuple]:
    """ImageNet statistics, as every InternVideo2 encoder was trained with (``inputs.mean/std`` override)."""
    return tuple(optional(cfg, "inputs.mean", IMAGENET_MEAN)), tuple(
        optional(cfg, "inputs.std", IMAGENET_STD)
    )


def _prompt(cfg: DictConfig) -> str:
    return str(optional(cfg, "model.text_encoder.prompt", "") or "")


def _corpora(value, key: str) -> list:
    corpora = OmegaConf.to_container(value, resolve=True)
    corpora = corpora if isinstance(corpora, list) else [corpora]
    for corpus in corpora:
        if not isinstance(corpus, dict) or "anno_path" not in corpus:
            raise ConfigError(f"{key}: each corpus needs an 'anno_path', got {corpus!r}")
    return corpora


def build_train_datasets(cfg: DictConfig, tokenizer) -> dict[str, VideoTextTrainDataset]:
    """Media type (``image`` / ``video``) -> all ``train_file`` corpora of that type, merged."""
    records: dict[str, list] = {}
    for corpus in _corpora(require(cfg, "train_file"), "train_file"):
        for record in load_annotations(
            corpus["anno_path"], corpus.get("data_root", ""), corpus.get("media_type")
        ):
            records.setdefault(record.media_type, []).append(record)
    mean, std = _norm_stats(cfg)
    return {
        media: VideoTextTrainDataset(
            rows,
            Tokenize(tokenizer, int(require(cfg, f"inputs.max_txt_l.{media}")), _prompt(cfg)),
            train_transform(int(require(cfg, "inputs.image_res")), mean, std),
            num_frames=1 if media == "image" else int(require(cfg, "inputs.video_input.num_frames")),
            sample=str(optional(cfg, "inputs.video_input.sample_type", "rand")),
            seed=int(optional(cfg, "seed", 0)),
        )
        for media, rows in records.items()
    }


def build_train_loader(cfg: DictConfig, tokenizer, world_size: int):
    """One corpus type: a shuffled loader of pairs; images and videos: a loader of media batches."""
    datasets = build_train_datasets(cfg, tokenizer)
    sizes = {m: int(require(cfg, f"inputs.batch_size.{m}")) for m in datasets}
    workers, seed = int(optional(cfg, "num_workers", 0)), int(optional(cfg, "seed", 42))
    if len(datasets) == 1:
        ((media, dataset),) = datasets.items()
        return build_loader(dataset, sizes[media], train=True, num_workers=workers, seed=seed)
    mixed = MediaBatchDataset(datasets, sizes, world_size, seed)
    return build_loader(mixed, 1, train=False, num_workers=workers, seed=seed)


def build_test_sets(cfg: DictConfig, tokenizer) -> dict[str, tuple[RetrievalDataset, Tokenize]]:
    """``test_file`` name -> (dataset, tokenizer call); ``test_types`` (if set) picks the names."""
    files = OmegaConf.to_container(require(cfg, "test_file"), resolve=True)
    names = list(optional(cfg, "test_types", None) or files)
    mean, std = _norm_stats(cfg)
    out = {}
    for name in names:
        if name not in files:
            raise ConfigError(f"test_types names {name!r}, which test_file does not define")
        corpus = files[name]
        dataset = RetrievalDataset(
            load_annotations(corpus["anno_path"], corpus.get("data_root", ""), corpus.get("media_type")),
            test_transform(int(require(cfg, "inputs.image_res")), mean, std),
            num_frames=int(require(cfg, "inputs.video_input.num_frames_test")),
            sample=str(optional(cfg, "inputs.video_input.sample_type_test", "middle")),
            is_paragraph_retrieval=bool(corpus.get("is_paragraph_retrieval", False)),
        )
        max_len = int(corpus.get("max_txt_l", require(cfg, "inputs.max_txt_l.video")))
        out[name] = (dataset, Tokenize(tokenizer, max_len, _prompt(cfg)))
    return out


def frame_ensemble(cfg: DictConfig) -> str:
    """``evaluation.eval_frame_ensemble`` (``concat`` unless set), checked."""
    ensemble = str(optional(cfg, "evaluation.eval_frame_ensemble", "concat"))
    if ensemble not in FRAME_ENSEMBLES:
        source = optional(cfg, SOURCE_KEY, "<unknown file>")
        raise ConfigError(
            f"config key 'evaluation.eval_frame_ensemble' in {source} must be one of {FRAME_ENSEMBLES}, "
            f"got {ensemble!r}"
        )
    return ensemble


def evaluate_test_sets(model, test_sets: dict, cfg: DictConfig, device) -> dict[str, float]:
    """Flat ``{<set>_<itc|dsl|itm>/<metric>: value}`` over all test sets."""
    ensemble = frame_ensemble(cfg)
    flat = {}
    for name, (dataset, tokenize) in test_sets.items():
        loader = build_loader(
            dataset,
            int(require(cfg, "inputs.batch_size_test.video")),
            train=False,
            num_workers=int(optional(cfg, "num_workers", 0)),
        )
        results = evaluate_retrieval(
            model,
            dataset,
            loader,
            tokenize,
            device,
            k_test=int(optional(cfg, "evaluation.k_test", 128)),
            use_itm=not optional(cfg, "evaluation.eval_x_only", False),
            ensemble=ensemble,
        )
        for kind, metrics in results.items():
            for key, value in metrics.items():
                flat[f"{name}_{kind}/{key}"] = value
    return flat


def stage2_step(model, batch: dict, backend) -> tuple[torch.Tensor, dict]:
    """One batch through any model of this package (audio fbanks go to audio-visual models)."""
    extra = {"audio": backend.prepare(batch["audio"])} if "audio" in batch else {}
    losses = model(
        backend.prepare(batch["video"]),
        backend.prepare(batch["input_ids"]),
        backend.prepare(batch["attention_mask"]),
        backend.prepare(batch["idx"]),
        **extra,
    )
    total = sum(losses.values())
    return total, {k: v.detach() for k, v in losses.items()}


def _precision(cfg: DictConfig) -> str:
    if not optional(cfg, "use_half_precision", False):
        return "fp32"
    return "bf16" if optional(cfg, "use_bf16", True) else "fp16"


def training_args(cfg: DictConfig) -> argparse.Namespace:
    """The config's training keys under the argument names :mod:`ivtools.train.setup` reads.

    ``deepspeed.enable`` / ``deepspeed.stage`` pick DeepSpeed ZeRO, ``use_half_precision`` /
    ``use_bf16`` the precision, ``optimizer.max_grad_norm`` (<= 0: off) the clipping, as the
    original. DeepSpeed's micro-batch is the video batch size (its only use is logging).
    """
    precision = _precision(cfg)
    clip = float(optional(cfg, "optimizer.max_grad_norm", -1))
    sizes = OmegaConf.to_container(require(cfg, "inputs.batch_size"), resolve=True)
    return argparse.Namespace(
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        clip_grad=clip if clip > 0 else None,
        update_freq=1,
        batch_size=int(sizes.get("video", next(iter(sizes.values())))),
        enable_deepspeed=bool(optional(cfg, "deepspeed.enable", False)),
        zero_stage=int(optional(cfg, "deepspeed.stage", 1)),
        # Frozen towers and disabled heads leave parameters without gradients under DDP.
        find_unused_parameters=bool(optional(cfg, "model.find_unused_parameters", False)),
        epochs=int(require(cfg, "scheduler.epochs")),
        output_dir=optional(cfg, "output_dir", None),
        max_updates_per_epoch=optional(cfg, "max_iters_per_epoch", None),
        steps_per_print=int(optional(cfg, "log_freq", 100)),
        save_ckpt_freq=1,
        auto_resume=bool(optional(cfg, "auto_resume", False)),
    )


def build_lr_schedule(cfg: DictConfig, optimizer, per_epoch: int) -> WarmupCosineMultiplier:
    """The original's schedule: linear warm-up over ``scheduler.warmup_epochs``, then cosine,
    both floored at ``scheduler.min_lr_multi`` times each group's lr (no batch-size scaling)."""
    return WarmupCosineMultiplier(
        optimizer,
        total_steps=int(require(cfg, "scheduler.epochs")) * per_epoch,
        warmup_steps=int(float(optional(cfg, "scheduler.warmup_epochs", 0)) * per_epoch),
        min_lr_multi=float(optional(cfg, "scheduler.min_lr_multi", 0.01)),
    )


def different_lr_groups(model, weight_decay: float, patterns: list[str], lr: float) -> list[dict]:
    """Parameter groups for the original's ``optimizer.different_lr``.

    timm's weight-decay groups (the ones the optimizer gets without ``different_lr``), each split
    in two: trainable parameters whose names match any regular expression in ``patterns``
    (``re.search``) get ``lr``, the others keep the optimizer's.
    """
    from timm.optim import param_groups_weight_decay

    compiled = [re.compile(p) for p in patterns]
    special = {
        id(p)
        for name, p in model.named_parameters()
        if p.requires_grad and any(c.search(name) for c in compiled)
    }
    if not special:
        raise ConfigError(f"optimizer.different_lr.module_names {patterns} match no trainable parameter")
    no_decay = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    groups = []
    for group in param_groups_weight_decay(model, weight_decay, no_weight_decay_list=no_decay):
        for own_lr in (False, True):
            params = [p for p in group["params"] if (id(p) in special) == own_lr]
            if params:
                groups.append({**group, "params": params, **({"lr": lr} if own_lr else {})})
    return groups


def build_mm_optimizer(cfg: DictConfig, model) -> torch.optim.Optimizer:
    """The ``optimizer`` section as is (the original does not scale the lr with the batch size).

    ``optimizer.different_lr = {enable, module_names, lr}`` gives the parameters whose names match
    ``module_names`` (regular expressions) their own lr.
    """
    opt = require(cfg, "optimizer")
    different = opt.get("different_lr", None)
    params = model
    if different is not None and different.get("enable", False):
        params = different_lr_groups(
            model, float(opt.weight_decay), list(require(cfg, "optimizer.different_lr.module_names")),
            float(require(cfg, "optimizer.different_lr.lr")),
        )  # fmt: skip
    return build_optimizer(
        params,
        opt=str(opt.opt),
        lr=float(opt.lr),
        weight_decay=float(opt.weight_decay),
        betas=tuple(opt.get("opt_betas", (0.9, 0.999))),
    )


def run_pretrain(cfg: DictConfig) -> list[dict]:
    """Stage-2 training; returns the per-epoch records (losses and retrieval metrics)."""
    dist = init_distributed(str(optional(cfg, "device", "cuda" if torch.cuda.is_available() else "cpu")))
    seed_everything(int(optional(cfg, "seed", 42)), dist.rank)
    tokenizer = build_tokenizer(cfg)
    model = build_model(cfg, tokenizer, is_pretrain=str(optional(cfg, "mode", "pt")) == "pt")
    load_pretrained_parts(model, cfg)
    loader = build_train_loader(cfg, tokenizer, dist.world_size)
    args = training_args(cfg)
    optimizer = build_mm_optimizer(cfg, model)
    scheduler = build_lr_schedule(cfg, optimizer, updates_per_epoch_or_fail(loader, args, dist))
    backend = backend_from_args(args, model, optimizer, dist)
    test_sets = build_test_sets(cfg, tokenizer) if optional(cfg, "test_file", None) else {}
    trainer = Trainer(
        backend,
        loader,
        stage2_step,
        replace(trainer_config_from_args(args), tensorboard=False),
        dist,
        lr_scheduler=scheduler,
        evaluate_fn=(lambda m: evaluate_test_sets(m, test_sets, cfg, dist.device)) if test_sets else None,
    )
    return trainer.fit()


def run_retrieval(cfg: DictConfig) -> dict[str, float]:
    """Zero-shot retrieval of ``pretrained_path`` on every ``test_file`` set; writes ``eval.json``."""
    dist: DistInfo = init_distributed(
        str(optional(cfg, "device", "cuda" if torch.cuda.is_available() else "cpu"))
    )
    tokenizer = build_tokenizer(cfg)
    model = build_model(cfg, tokenizer, is_pretrain=False)
    load_for_evaluation(model, cfg, optional(cfg, "pretrained_path", ""))
    model.to(dist.device)
    results = evaluate_test_sets(model, build_test_sets(cfg, tokenizer), cfg, dist.device)
    out = optional(cfg, "output_dir", None)
    if out and dist.is_main:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "eval.json").write_text(json.dumps(results, indent=2))
    return results
