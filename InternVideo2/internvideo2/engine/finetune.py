"""The InternVideo2 parts of fine-tuning and probing: model creation and pretrained-weight loading.

Everything else (data, augmentation, optimizer, DeepSpeed, resume, multi-view test) is
:func:`ivtools.train.classification.run_classification`; ``run_finetuning.py`` and
``run_linear_probing.py`` pass it :func:`build_model` (or :func:`build_probing_model`) and
:func:`load_pretrained`.

Loading a checkpoint follows the original ``run_finetuning.py`` through the package's one loader,
:func:`internvideo2.models.load_checkpoint`: the state dict is taken from ``--model_key``
(``model|module``), restricted to ``--model_prefix``, overridden by ``--finetune_extra``'s
``vision_encoder.`` tensors, and a 710-way Kinetics head is cut or remapped to ``--nb_classes``
(:mod:`internvideo2.data.k710`) or dropped (``--delete_head``); the loader then removes wrapper
prefixes and alignment heads, inflates 2D patch weights to the model's tubelet (``--center_init``)
and resamples position tables from the checkpoint's grid (``--orig_t_size`` frames). The load is
non-strict, and what was re-initialised, dropped or resized is printed and returned.
"""

from __future__ import annotations

import argparse
import json
from functools import partial

import timm
import torch
from torch import nn

import internvideo2.models  # noqa: F401 - registers the model factories with timm
from internvideo2.data.k710 import K710_CLASSES, k710_head_indices, remap_k710_head
from internvideo2.models.loading import LoadReport, load_checkpoint, strip_wrappers, to_encoder_state_dict
from ivtools.checkpoint import load_state_dict_file, unwrap_state_dict
from ivtools.distributed import is_main_process
from ivtools.train.classification import add_classification_args

FUSED_FLAGS = ("use_flash_attn", "use_fused_rmsnorm", "use_fused_mlp")


def add_model_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The original's model and checkpoint arguments of ``run_finetuning.py``."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="internvideo2_1B_patch14_224", type=str, help="registered model name")
    g.add_argument(
        "--tubelet_size", type=int, default=1, help="frames per patch (all InternVideo2 models: 1)"
    )
    g.add_argument("--layer_scale_init_value", default=1e-5, type=float)
    g.add_argument("--layerscale_no_force_fp32", action="store_true")
    g.add_argument("--sep_pos_embed", action="store_true")
    g.add_argument(
        "--center_init", action="store_true", help="inflate 2D patch weights into the centre frame"
    )
    g.add_argument("--fc_drop_rate", type=float, default=0.0)
    g.add_argument("--drop_path", type=float, default=0.1)
    g.add_argument("--head_drop_path", type=float, default=0.0)
    g.add_argument("--init_scale", default=0.001, type=float, help="scale of the initial head weights")
    g.add_argument("--use_checkpoint", action="store_true", help="activation checkpointing")
    g.add_argument("--checkpoint_num", default=0, type=int, help="blocks that use activation checkpointing")
    g.add_argument("--merge_method", type=str, default="proj", help="internvideo2_cat_* models only")
    g.add_argument("--merge_norm", type=str, default="kaiming_BN", help="internvideo2_cat_* models only")
    for flag in FUSED_FLAGS:
        g.add_argument(
            f"--{flag}",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="default: the factory's; the three flags must agree",
        )
    g.add_argument(
        "--model_kwargs",
        type=json.loads,
        default={},
        help='extra factory kwargs as JSON, e.g. \'{"embed_dim": 64, "depth": 2}\' for a reduced model',
    )
    g.add_argument(
        "--min_scale", type=float, default=0.08, help="smallest training crop area (original: 0.08)"
    )
    g = parser.add_argument_group("pretrained weights")
    g.add_argument("--delete_head", action="store_true", help="drop the checkpoint's head")
    g.add_argument("--model_key", default="model|module", type=str)
    g.add_argument("--model_prefix", default="", type=str, help="keep only checkpoint keys under this prefix")
    g.add_argument(
        "--orig_t_size", type=int, default=8, help="frames the checkpoint's pos_embed was made for"
    )
    g.add_argument("--k710_label_list", default=None, help="K710 class names in the checkpoint's head order")
    g.add_argument("--target_label_list", default=None, help="class names of --nb_classes, in label order")
    return parser


def fused_flag_kwargs(args) -> dict:
    return {flag: getattr(args, flag) for flag in FUSED_FLAGS if getattr(args, flag, None) is not None}


def build_model(args) -> nn.Module:
    """``timm.create_model(args.model, ...)`` with the original's keyword arguments."""
    kwargs = {
        "num_classes": args.nb_classes,
        "num_frames": args.num_frames,
        "img_size": args.input_size,
        "tubelet_size": args.tubelet_size,
        "sep_pos_embed": args.sep_pos_embed,
        "fc_drop_rate": args.fc_drop_rate,
        "drop_path_rate": args.drop_path,
        "head_drop_path_rate": args.head_drop_path,
        "use_checkpoint": args.use_checkpoint,
        "checkpoint_num": args.checkpoint_num,
        "init_scale": args.init_scale,
        "init_values": args.layer_scale_init_value,
        "layerscale_no_force_fp32": args.layerscale_no_force_fp32,
        **fused_flag_kwargs(args),
    }
    if "_cat_" in args.model:
        kwargs.update(merge_method=args.merge_method, merge_norm=args.merge_norm)
    kwargs.update(args.model_kwargs)
    if not timm.is_model(args.model):
        known = [m for m in timm.list_models() if "internvideo2" in m]
        raise ValueError(f"unknown --model {args.model!r}; InternVideo2 models: {known}")
    return timm.create_model(args.model, pretrained=False, **kwargs)


def _finetune_edits(sd: dict[str, torch.Tensor], args, notes: list[str]) -> dict[str, torch.Tensor]:
    """The original's fine-tuning options, applied before the loader's own conversions."""
    if args.model_prefix:
        sd = {k[len(args.model_prefix) :]: v for k, v in sd.items() if k.startswith(args.model_prefix)}
        if not sd:
            raise KeyError(f"no checkpoint key starts with --model_prefix {args.model_prefix!r}")
    # Wrappers go first so that a wrapped head ("encoder.head.weight") is recognised too.
    sd = strip_wrappers(sd)
    extra = getattr(args, "finetune_extra", "")
    if extra:
        # A stage-2 multi-modality checkpoint: its vision_encoder.* tensors override the first's.
        extra_sd = strip_wrappers(unwrap_state_dict(load_state_dict_file(extra), args.model_key))
        if not any(k.startswith("vision_encoder.") for k in extra_sd):
            raise KeyError(f"{extra}: no 'vision_encoder.' keys to take from --finetune_extra")
        vision = to_encoder_state_dict(extra_sd)
        sd = {**sd, **vision}
        notes.append(f"{len(vision)} tensors from {extra}")
    if "head.weight" in sd and args.delete_head:
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
        notes.append("head removed (--delete_head)")
    elif (
        "head.weight" in sd and sd["head.weight"].shape[0] == K710_CLASSES and args.nb_classes != K710_CLASSES
    ):
        indices = k710_head_indices(
            args.nb_classes, getattr(args, "k710_label_list", None), getattr(args, "target_label_list", None)
        )
        sd = remap_k710_head(sd, indices)
        notes.append(f"K710 head mapped to {args.nb_classes} classes")
    return sd


def load_pretrained(model: nn.Module, path: str, args) -> LoadReport:
    """Initialise ``model`` from the checkpoint at ``path`` (``--finetune``); returns the report."""
    notes: list[str] = []
    report = load_checkpoint(
        model,
        path,
        model_key=args.model_key,
        orig_t_size=args.orig_t_size,
        strict=False,
        center_init=args.center_init,
        edit=partial(_finetune_edits, args=args, notes=notes),
    )
    report.notes = notes
    if is_main_process():
        print(f"loaded {path}: {report}", flush=True)
    return report


def finetuning_parser() -> argparse.ArgumentParser:
    """The complete ``run_finetuning.py`` parser: the shared classification arguments + the model's."""
    parser = argparse.ArgumentParser("InternVideo2 fine-tuning", allow_abbrev=False)
    return add_model_args(add_classification_args(parser))


def probing_parser() -> argparse.ArgumentParser:
    """The complete ``run_linear_probing.py`` parser."""
    parser = argparse.ArgumentParser("InternVideo2 linear / attentive probing", allow_abbrev=False)
    return add_probing_args(add_model_args(add_classification_args(parser)))


def add_probing_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``run_linear_probing.py``'s extra arguments."""
    g = parser.add_argument_group("probing")
    g.add_argument(
        "--open_clip_projector", action="store_true", help="train the attention pool too (attentive probing)"
    )
    g.add_argument("--open_block_num", type=int, default=0, help="also train the last N blocks")
    g.add_argument(
        "--finetune_extra",
        default="",
        help="a checkpoint whose vision_encoder.* tensors override --finetune's",
    )
    return parser


def freeze_for_probing(
    model: nn.Module, open_block_num: int = 0, open_clip_projector: bool = False
) -> list[str]:
    """Freeze the backbone as the original linear probing does; return the trainable names.

    Frozen: patch/position embeddings, the class token, every block except the last
    ``open_block_num``, and ``clip_projector`` unless ``open_clip_projector``. Everything else
    (``fc_norm``, ``head``, an attentive-probing model's extra layers) stays trainable.
    """
    depth = len(model.blocks)
    if not 0 <= open_block_num <= depth:
        raise ValueError(f"--open_block_num {open_block_num} outside [0, {depth}]")
    open_blocks = {str(i) for i in range(depth - open_block_num, depth)}
    trainable = []
    for name, param in model.named_parameters():
        root = name.split(".")[0]
        if root in ("patch_embed", "cls_token") or root.startswith("pos_embed"):
            frozen = True
        elif root == "blocks":
            frozen = name.split(".")[1] not in open_blocks
        else:
            frozen = root == "clip_projector" and not open_clip_projector
        param.requires_grad_(not frozen)
        if not frozen:
            trainable.append(name)
    return trainable


def build_probing_model(args) -> nn.Module:
    model = build_model(args)
    trainable = freeze_for_probing(model, args.open_block_num, args.open_clip_projector)
    if is_main_process():
        print(f"probing: {len(trainable)} trainable tensors: {', '.join(trainable)}", flush=True)
    return model
