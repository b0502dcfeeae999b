"""``run_pretraining.py`` / ``run_distill.py``: arguments, models, data and the training run.

Pretraining (``distill=False``): student ``pretrain_internvideo2_{1B,6B}_patch14_224``, CLIP teacher
``internvl_clip_6b`` and MAE teacher ``mae_g14_hybrid`` (VideoMAEv2-g, tubelet 2). Distillation
(``distill=True``): student ``distill_internvideo2_{small,base,large}_patch14_224`` and the
InternVideo2-1B teacher ``teacher_internvideo2_stage2_1B`` (or ``teacher_internvideo2_1B``), no MAE
teacher. Both train with :class:`ivtools.train.Trainer` (native or DeepSpeed, resume, logging)
and the step of :mod:`internvideo2.engine.pretrain`.

Teacher weights: ``--clip_teacher_ckpt`` / ``--mae_teacher_ckpt``; by default the original's files
under ``$INTERNVIDEO2_MODEL_PATH`` (:data:`TEACHER_FILES`). A run with random teachers teaches
nothing, so it needs ``--teacher_random_init`` (for smoke tests and demos).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import timm
import torch
from torch import nn

import internvideo2.models  # noqa: F401 - registers the model factories with timm
from internvideo2.data.masking import MASK_TYPES, build_mask_generator
from internvideo2.data.pretrain_dataset import PretrainVideoDataset, read_pretrain_list
from internvideo2.engine.finetune import FUSED_FLAGS, fused_flag_kwargs
from internvideo2.engine.pretrain import MaskedDistillationConfig, masked_distillation_step_fn
from internvideo2.models import LoadReport, load_checkpoint, released_conversion
from ivtools.data import build_loader
from ivtools.distributed import init_distributed, is_main_process
from ivtools.train import Trainer
from ivtools.train.compile import add_compile_argument, maybe_compile
from ivtools.train.setup import (
    backend_from_args,
    global_batch_size,
    optimizer_from_args,
    schedules_from_args,
    seed_everything,
    trainer_config_from_args,
    updates_per_epoch_or_fail,
)

# The original's teacher weight files, relative to $INTERNVIDEO2_MODEL_PATH.
TEACHER_FILES = {
    "internvl_clip_6b": "internvl/internvl_c_13b_224px.pth",
    "mae_g14_hybrid": "videomae/vit_g_hybrid_1200e_pre.pth",
    "teacher_internvideo2_1B": "stage1/1B/1B_pt.pth",
    "teacher_internvideo2_stage2_1B": "stage2/1B/1B_stage2_pt.pth",
    "teacher_internvideo2_6B": "stage1/6B/6B_pt.pth",
}


def _json(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def add_pretrain_args(parser: argparse.ArgumentParser, distill: bool) -> argparse.ArgumentParser:
    """The original ``run_pretraining.py`` (or ``run_distill.py``) arguments."""
    g = parser.add_argument_group("training")
    g.add_argument("--batch_size", default=64, type=int)
    g.add_argument("--epochs", default=800, type=int)
    g.add_argument("--update_freq", default=1, type=int)
    g.add_argument("--save_ckpt_freq", default=50, type=int)
    g.add_argument("--steps_per_print", default=1, type=int)
    g.add_argument("--max_updates_per_epoch", default=None, type=int, help="cap (for smoke runs)")
    g = parser.add_argument_group("student")
    default_model = (
        "distill_internvideo2_base_patch14_224" if distill else "pretrain_internvideo2_1B_patch14_224"
    )
    g.add_argument("--model", default=default_model, type=str)
    g.add_argument("--mask_type", default="tube", choices=MASK_TYPES)
    g.add_argument("--mask_ratio", default=0.75, type=float)
    g.add_argument("--input_size", default=224, type=int)
    g.add_argument("--drop_path", type=float, default=0.0)
    g.add_argument("--tubelet_size", default=1, type=int)
    g.add_argument("--layer_scale_init_value", default=1e-5, type=float)
    g.add_argument("--layerscale_no_force_fp32", action="store_true")
    g.add_argument("--sep_pos_embed", action="store_true")
    g.add_argument("--use_checkpoint", action="store_true")
    g.add_argument("--checkpoint_num", type=int, default=0)
    for flag in FUSED_FLAGS:
        g.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--model_kwargs", type=_json, default={}, help="extra student factory kwargs (JSON)")
    g = parser.add_argument_group("CLIP teacher")
    default_teacher = "teacher_internvideo2_stage2_1B" if distill else "internvl_clip_6b"
    g.add_argument("--clip_teacher", default=default_teacher, type=str)
    g.add_argument("--clip_input_resolution", default=224, type=int)
    g.add_argument("--clip_teacher_embed_dim", default=1408 if distill else 3200, type=int)
    g.add_argument("--clip_teacher_final_dim", default=768, type=int, help="0: no final-feature alignment")
    g.add_argument("--clip_loss_ratio", default=[1.0, 1.0], type=float, nargs=2)
    g.add_argument("--clip_norm_type", default="l2", choices=("l2", "none"))
    g.add_argument("--clip_return_attn", action="store_true")
    g.add_argument("--clip_return_layer", default=1, type=int)
    g.add_argument("--clip_teacher_return_interval", default=1, type=float)
    g.add_argument("--clip_student_return_interval", default=1, type=float)
    g.add_argument(
        "--clip_teacher_ckpt", default=None, help="teacher weights (default: under $INTERNVIDEO2_MODEL_PATH)"
    )
    g.add_argument(
        "--clip_teacher_kwargs", type=_json, default={}, help="extra teacher factory kwargs (JSON)"
    )
    if distill:
        g.add_argument("--clip_teacher_return_index", default=None, type=int, nargs="+")
        g.add_argument("--clip_student_return_index", default=None, type=int, nargs="+")
        g.add_argument("--clip_student_decoder", default="Linear_Decoder", type=str)
    else:
        g = parser.add_argument_group("MAE teacher")
        g.add_argument("--mae_teacher", default="mae_g14_hybrid", type=str)
        g.add_argument("--mae_input_resolution", default=224, type=int)
        g.add_argument("--mae_tubelet_size", default=2, type=int)
        g.add_argument("--mae_teacher_embed_dim", default=1408, type=int)
        g.add_argument("--mae_norm_type", default="l2", choices=("l2", "none"))
        g.add_argument("--mae_loss_ratio", default=1.0, type=float)
        g.add_argument("--mae_return_layer", default=1, type=int)
        g.add_argument("--mae_teacher_return_interval", default=1, type=float)
        g.add_argument("--mae_student_return_interval", default=1, type=float)
        g.add_argument("--mae_teacher_ckpt", default=None)
        g.add_argument("--mae_teacher_kwargs", type=_json, default={})
    g.add_argument("--teacher_random_init", action="store_true", help="allow random teachers (tests/demos)")
    g = parser.add_argument_group("optimizer")
    g.add_argument("--opt", default="adamw", type=str)
    g.add_argument("--opt_eps", default=1e-6, type=float)
    g.add_argument("--opt_betas", default=[0.9, 0.98], type=float, nargs="+")
    g.add_argument("--clip_grad", type=float, default=3.0)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight_decay", type=float, default=0.05)
    g.add_argument("--weight_decay_end", type=float, default=None)
    g.add_argument("--lr", type=float, default=1.5e-4, help="for a global batch of 256")
    g.add_argument("--warmup_lr", type=float, default=1e-6)
    g.add_argument("--min_lr", type=float, default=1e-5)
    g.add_argument("--warmup_epochs", type=int, default=40)
    g.add_argument("--warmup_steps", type=int, default=-1)
    g = parser.add_argument_group("data")
    g.add_argument("--num_sample", type=int, default=1, help="repeated augmentation")
    g.add_argument("--flip", action="store_true")
    g.add_argument("--prefix", default="", type=str)
    g.add_argument("--split", default=" ", type=str)
    g.add_argument("--data_path", default="", type=str, help="the pretraining list file")
    g.add_argument("--num_segments", type=int, default=1)
    g.add_argument("--num_frames", type=int, default=16)
    g.add_argument("--sampling_rate", type=int, default=4)
    g.add_argument("--video_backend", default="auto")
    g.add_argument("--num_workers", default=10, type=int)
    g.add_argument("--pin_mem", action="store_true", default=True)
    g.add_argument("--no_pin_mem", action="store_false", dest="pin_mem")
    g = parser.add_argument_group("run")
    g.add_argument("--output_dir", default="")
    g.add_argument("--log_dir", default=None, help="kept for compatibility: logs go to --output_dir")
    g.add_argument("--device", default=None)
    g.add_argument("--seed", default=0, type=int)
    g.add_argument("--resume", default="", help="a checkpoint, or 'auto'")
    g.add_argument("--auto_resume", action="store_true", default=True)
    g.add_argument("--no_auto_resume", action="store_false", dest="auto_resume")
    g.add_argument("--enable_deepspeed", action="store_true")
    g.add_argument("--zero_stage", default=0, type=int)
    g.add_argument("--bf16", action="store_true")
    g.add_argument("--fp16", action="store_true")
    add_compile_argument(g)
    return parser


def student_frames(args) -> int:
    """Frames the student sees: every ``mae_tubelet_size // tubelet_size``-th frame when pretraining."""
    clip = args.num_segments if args.num_segments > 1 else args.num_frames
    return clip // td_ratio(args)


def td_ratio(args) -> int:
    if not hasattr(args, "mae_teacher"):
        return 1
    if args.mae_tubelet_size % args.tubelet_size:
        raise ValueError(f"--mae_tubelet_size {args.mae_tubelet_size} must be a multiple of --tubelet_size")
    return args.mae_tubelet_size // args.tubelet_size


def build_student(args) -> nn.Module:
    kwargs = {
        "drop_path_rate": args.drop_path,
        "num_frames": student_frames(args),
        "img_size": args.input_size,
        "tubelet_size": args.tubelet_size,
        "sep_pos_embed": args.sep_pos_embed,
        "use_checkpoint": args.use_checkpoint,
        "checkpoint_num": args.checkpoint_num,
        "init_values": args.layer_scale_init_value,
        "layerscale_no_force_fp32": args.layerscale_no_force_fp32,
        "clip_teacher_embed_dim": args.clip_teacher_embed_dim,
        "clip_teacher_final_dim": args.clip_teacher_final_dim,
        "clip_norm_type": args.clip_norm_type,
        "clip_return_layer": args.clip_return_layer,
        "clip_student_return_interval": args.clip_student_return_interval,
        **fused_flag_kwargs(args),
    }
    if hasattr(args, "mae_teacher"):
        kwargs.update(
            mae_teacher_embed_dim=args.mae_teacher_embed_dim,
            mae_norm_type=args.mae_norm_type,
            mae_return_layer=args.mae_return_layer,
            mae_student_return_interval=args.mae_student_return_interval,
        )
    else:
        kwargs.update(
            clip_student_return_index=args.clip_student_return_index,
            clip_student_decoder=args.clip_student_decoder,
        )
    kwargs.update(args.model_kwargs)
    return _create(args.model, kwargs, "--model")


def _teacher_factories() -> dict:
    # Teachers are plain factories, not timm models: they are never fine-tuned or listed.
    from internvideo2.models import (
        internvl_clip_6b,
        teacher_internvideo2_1B,
        teacher_internvideo2_6B,
        videomae_g14,
    )

    return {
        "internvl_clip_6b": internvl_clip_6b,
        "mae_g14_hybrid": videomae_g14,
        "videomae_g14": videomae_g14,
        # Stage-1 and stage-2 1B teachers share the architecture; only the weights differ.
        "teacher_internvideo2_1B": teacher_internvideo2_1B,
        "teacher_internvideo2_stage2_1B": teacher_internvideo2_1B,
        "teacher_internvideo2_6B": teacher_internvideo2_6B,
    }


def _create(name: str, kwargs: dict, flag: str) -> nn.Module:
    if timm.is_model(name):
        return timm.create_model(name, pretrained=False, **kwargs)
    factories = _teacher_factories()
    if name in factories:
        return factories[name](**kwargs)
    known = sorted(m for m in timm.list_models() if "internvideo2" in m) + sorted(factories)
    raise ValueError(f"unknown {flag} {name!r}; known: {known}")


def _teacher_checkpoint(name: str, explicit: str | None, random_ok: bool) -> str | None:
    if explicit:
        return explicit
    root = os.environ.get("INTERNVIDEO2_MODEL_PATH")
    if root and name in TEACHER_FILES and (Path(root) / TEACHER_FILES[name]).exists():
        return str(Path(root) / TEACHER_FILES[name])
    if random_ok:
        return None
    hint = f" or put it at $INTERNVIDEO2_MODEL_PATH/{TEACHER_FILES[name]}" if name in TEACHER_FILES else ""
    raise FileNotFoundError(
        f"no weights for teacher {name!r}: pass its checkpoint{hint} (or --teacher_random_init)"
    )


def load_teacher_weights(teacher: nn.Module, path: str) -> LoadReport:
    """Strict load of a teacher checkpoint in its released layout (see :func:`released_conversion`)."""
    report = load_checkpoint(teacher, path, edit=released_conversion(teacher))
    if is_main_process():
        print(f"teacher {type(teacher).__name__} <- {path}: {report}", flush=True)
    return report


def build_teachers(args) -> tuple[nn.Module, nn.Module | None]:
    clip_kwargs = {
        "clip_norm_type": args.clip_norm_type,
        "return_attn": args.clip_return_attn or args.mask_type == "attention",
        "clip_return_layer": args.clip_return_layer,
        "clip_return_interval": args.clip_teacher_return_interval,
        "img_size": args.clip_input_resolution,
    }
    if not hasattr(args, "mae_teacher"):
        clip_kwargs.update(clip_return_index=args.clip_teacher_return_index, num_frames=student_frames(args))
    clip_kwargs.update(args.clip_teacher_kwargs)
    teachers = [
        (_create(args.clip_teacher, clip_kwargs, "--clip_teacher"), args.clip_teacher, args.clip_teacher_ckpt)
    ]
    if hasattr(args, "mae_teacher"):
        mae_kwargs = {
            "img_size": args.mae_input_resolution,
            "tubelet_size": args.mae_tubelet_size,
            "mae_norm_type": args.mae_norm_type,
            "mae_return_layer": args.mae_return_layer,
            "mae_return_interval": args.mae_teacher_return_interval,
            **args.mae_teacher_kwargs,
        }
        teachers.append(
            (_create(args.mae_teacher, mae_kwargs, "--mae_teacher"), args.mae_teacher, args.mae_teacher_ckpt)
        )
    built = []
    for teacher, name, ckpt in teachers:
        path = _teacher_checkpoint(name, ckpt, args.teacher_random_init)
        if path is not None:
            load_teacher_weights(teacher, path)
        teacher.eval().requires_grad_(False)
        built.append(teacher)
    return built[0], (built[1] if len(built) > 1 else None)


def distillation_config(args) -> MaskedDistillationConfig:
    pretrain = hasattr(args, "mae_teacher")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
        "bf16" if args.bf16 else "fp16" if args.fp16 else ""
    )
    return MaskedDistillationConfig(
        mask_type=args.mask_type,
        mask_ratio=args.mask_ratio,
        clip_loss_ratio=tuple(args.clip_loss_ratio),
        mae_loss_ratio=args.mae_loss_ratio if pretrain else 0.0,
        td_ratio=td_ratio(args),
        clip_input_resolution=args.clip_input_resolution,
        mae_input_resolution=args.mae_input_resolution if pretrain else args.input_size,
        distill_final_features=args.clip_teacher_final_dim > 0,
        clip_norm_type=args.clip_norm_type,
        mae_norm_type=args.mae_norm_type if pretrain else "l2",
        teacher_dtype=dtype,
    )


def build_pretraining_dataset(args, window: tuple[int, int, int]) -> PretrainVideoDataset:
    records = read_pretrain_list(args.data_path, sep=args.split, prefix=args.prefix)
    return PretrainVideoDataset(
        records,
        num_frames=args.num_frames,
        sampling_rate=args.sampling_rate,
        num_segments=args.num_segments,
        input_size=args.input_size,
        flip=args.flip,
        mask_generator=build_mask_generator(args.mask_type, window, args.mask_ratio),
        num_sample=args.num_sample,
        seed=args.seed,
        backend=args.video_backend,
    )


def token_window(model: nn.Module) -> tuple[int, int, int]:
    grid = getattr(model, "grid_size", None) or model.patch_embed.grid_size
    return tuple(int(g) for g in grid)


def run_pretraining(args) -> list[dict]:
    """Train the student (pretraining when ``args`` has MAE-teacher arguments, else distillation)."""
    dist = init_distributed(args.device)
    seed_everything(args.seed, dist.rank)
    student = build_student(args)
    clip_teacher, mae_teacher = build_teachers(args)
    clip_teacher.to(dist.device)
    if mae_teacher is not None:
        mae_teacher.to(dist.device)
    dataset = build_pretraining_dataset(args, token_window(student))
    loader = build_loader(
        dataset,
        args.batch_size,
        train=True,
        num_workers=args.num_workers,
        seed=args.seed,
        pin_memory=args.pin_mem,
    )
    maybe_compile(student, args, dist.device)
    global_batch = global_batch_size(args, dist)
    optimizer = optimizer_from_args(args, student, global_batch)
    backend = backend_from_args(args, student, optimizer, dist)
    per_epoch = updates_per_epoch_or_fail(loader, args, dist)
    scheduler, wd_schedule = schedules_from_args(args, optimizer, per_epoch, global_batch)
    if is_main_process():
        trainable = sum(p.numel() for p in student.parameters() if p.requires_grad)
        print(
            f"student {args.model}: {trainable / 1e6:.2f}M parameters; token window {token_window(student)}; "
            f"mask {args.mask_type} {args.mask_ratio}; global batch {global_batch}",
            flush=True,
        )
    cfg = trainer_config_from_args(args)
    step = masked_distillation_step_fn(clip_teacher, mae_teacher, distillation_config(args))
    trainer = Trainer(backend, loader, step, cfg, dist, lr_scheduler=scheduler, wd_schedule=wd_schedule)
    return trainer.fit()
