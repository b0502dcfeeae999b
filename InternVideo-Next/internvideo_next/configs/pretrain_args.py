"""Arguments of ``main_stage1.py`` / ``main_stage2.py``, named as in the original.

Teachers and the ModernBERT decoder load from local folders (``--clip_teacher_path``,
``--bert_path``); without a path they get random weights from their released configs, which
``--teacher_kwargs`` / ``--bert_kwargs`` / ``--model_kwargs`` (JSON) may override -- used by smoke
runs with tiny models.
"""

from __future__ import annotations

import argparse
import json


def json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def add_pretrain_args(parser: argparse.ArgumentParser, stage: int) -> argparse.ArgumentParser:
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=f"internvideo_next_stage{stage}_base")
    g.add_argument("--model_kwargs", type=json_dict, default={}, help="JSON overrides of the model config")
    g.add_argument("--bert_path", default=None, help="local ModernBERT-large folder (default: random init)")
    g.add_argument(
        "--bert_kwargs", type=json_dict, default={}, help="JSON overrides of the ModernBERT config"
    )
    g.add_argument("--bert_keep_layers", type=int, default=5)
    g.add_argument("--drop_path", type=float, default=0.0)
    g.add_argument("--layer_scale_init_value", type=float, default=1e-5)
    g.add_argument("--layerscale_no_force_fp32", action="store_true")
    g.add_argument("--use_checkpoint", action="store_true")
    g.add_argument("--checkpoint_num", type=int, default=0)
    g.add_argument("--cls_token_num", type=int, default=4)
    g.add_argument("--tubelet_size", type=int, default=1)
    g = parser.add_argument_group("data")
    g.add_argument("--data_path", required=True, help="pretraining list file")
    g.add_argument("--prefix", default="")
    g.add_argument("--split", default=" ")
    g.add_argument("--num_frames", type=int, default=16)
    g.add_argument("--input_size", type=int, default=224)
    g.add_argument("--flip", action="store_true")
    g.add_argument("--num_workers", type=int, default=10)
    g.add_argument("--video_backend", default="auto")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--batch_size", type=int, default=64)
    g.add_argument("--epochs", type=int, default=800)
    g.add_argument("--update_freq", type=int, default=1)
    g.add_argument("--max_updates_per_epoch", type=int, default=None, help="cap (for smoke runs)")
    g.add_argument("--opt", default="adamw")
    g.add_argument("--opt_eps", type=float, default=1e-6)
    g.add_argument("--opt_betas", type=float, nargs="+", default=[0.9, 0.98])
    g.add_argument("--clip_grad", type=float, default=3.0)
    g.add_argument("--weight_decay", type=float, default=0.05)
    g.add_argument("--weight_decay_end", type=float, default=None)
    g.add_argument("--lr", type=float, default=1.5e-4, help="base lr for a global batch of 256")
    g.add_argument("--warmup_lr", type=float, default=1e-6)
    g.add_argument("--min_lr", type=float, default=1e-5)
    g.add_argument("--warmup_epochs", type=int, default=40)
    g.add_argument("--warmup_steps", type=int, default=-1)
    g = parser.add_argument_group("run")
    g.add_argument("--output_dir", default="")
    g.add_argument("--save_ckpt_freq", type=int, default=50)
    g.add_argument("--steps_per_print", type=int, default=1)
    g.add_argument("--resume", default="", help="checkpoint path, or 'auto'")
    g.add_argument("--auto_resume", action="store_true", default=True)
    g.add_argument("--no_auto_resume", action="store_false", dest="auto_resume")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default=None)
    g.add_argument("--enable_deepspeed", action="store_true")
    g.add_argument("--zero_stage", type=int, default=0)
    g.add_argument("--bf16", action="store_true")
    g.add_argument("--fp16", action="store_true")
    if stage == 1:
        _stage1_args(parser)
    else:
        g = parser.add_argument_group("stage 2")
        g.add_argument("--stage1_checkpoint", default="", help="stage-1 weights for student and teacher")
        g.add_argument(
            "--momentum", type=float, default=1.0, help="teacher EMA momentum (1.0 = frozen; --mom)"
        )
        g.add_argument("--max_keep", type=int, default=None, help="context cap (default 400 per 8 frames)")
    return parser


def _stage1_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("stage 1: teacher and losses")
    g.add_argument(
        "--clip_teacher_path", default=None, help="local SigLIP/SigLIP2 folder (default: random init)"
    )
    g.add_argument(
        "--teacher_kwargs", type=json_dict, default={}, help="JSON overrides of the teacher config"
    )
    g.add_argument("--clip_teacher_embed_dim", type=int, default=1536)
    g.add_argument("--clip_teacher_final_dim", type=int, default=1536)
    g.add_argument("--clip_loss_ratio", type=float, nargs=3, default=[1.0, 1.0, 1.0])
    g.add_argument("--clip_return_layer", type=int, default=6)
    g.add_argument("--clip_teacher_return_interval", type=float, default=1)
    g.add_argument("--clip_student_return_interval", type=float, default=1)
    g.add_argument("--clip_teacher_return_index", type=int, nargs="+", default=None)
    g.add_argument("--clip_student_return_index", type=int, nargs="+", default=None)
    g.add_argument("--diffloss_d", type=int, default=None, help="denoiser depth (default: the model's)")
    g.add_argument("--diffloss_w", type=int, default=None, help="denoiser width (default: the model's)")
    g.add_argument("--mask_type", default="attention", choices=["attention", "tube", "random"])
    g.add_argument("--mask_ratio", type=float, default=0.75)
    g = parser.add_argument_group("stage 1: multi-frame / multi-resolution schedule")
    g.add_argument("--multi_scale", action="store_true", help="draw frames/resolution per step")
    g.add_argument("--f1", type=int, default=4)
    g.add_argument("--f2", type=int, default=26)
    g.add_argument("--fs", type=int, default=2)
    g.add_argument("--r1", type=int, default=168)
    g.add_argument("--r2", type=int, default=280)
    g.add_argument("--rs", type=int, default=28)
    g.add_argument("--base_token_num", type=int, default=2048)
    g.add_argument("--max_token_limit", type=int, default=4096)
    g.add_argument("--min_token_limit", type=int, default=2048)
