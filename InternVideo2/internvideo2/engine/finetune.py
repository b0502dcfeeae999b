"""The InternVideo2 parts of fine-tuning and probing: model creation and pretrained-weight loading.

Everything else (data, augmentation, optimizer, DeepSpeed, resume, multi-view test) is
:func:`ivtools.train.classification.run_classification`; ``run_finetuning.py`` and
``run_linear_probing.py`` pass it :func:`build_model` (or :func:`build_probing_model`) and
:func:`load_pretrained`.

Loading a checkpoint follows the original ``run_finetuning.py``: the state dict is taken from
``--model_key`` (``model|module``), a 710-way Kinetics head is cut or remapped to ``--nb_classes``
(:mod:`internvideo2.data.k710`), ``backbone.``/``encoder.`` prefixes are removed, 2D patch
weights are inflated to the model's tubelet, and position tables are resampled from the
checkpoint's grid (``--orig_t_size`` frames) to the model's. The load is non-strict, and what
was missing, unexpected or of the wrong shape is printed and returned.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field

import timm
import torch
from torch import nn

import internvideo2.models  # noqa: F401 - registers the model factories with timm
from internvideo2.data.k710 import K710_CLASSES, k710_head_indices, remap_k710_head
from ivtools.checkpoint import interpolate_pos_embed, load_state_dict_file, strip_prefix, unwrap_state_dict
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


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did not load, by reason."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # "key: checkpoint shape -> model shape"
    notes: list[str] = field(default_factory=list)

    def summary(self, path: str) -> str:
        lines = [f"loaded {path}"] + [f"  {n}" for n in self.notes]
        for name, keys in (
            ("missing in checkpoint (kept at init)", self.missing),
            ("unexpected in checkpoint (ignored)", self.unexpected),
            ("shape mismatch (kept at init)", self.mismatched),
        ):
            if keys:
                lines.append(f"  {name}: {len(keys)}: {', '.join(keys)}")
        return "\n".join(lines)


def inflate_patch_weight(weight_2d: torch.Tensor, tubelet: int, center: bool = False) -> torch.Tensor:
    """``(D, C, H, W)`` image patch weights -> ``(D, C, tubelet, H, W)`` video patch weights.

    ``center`` puts the 2D kernel in the middle frame (zeros elsewhere); otherwise it is spread
    evenly over the frames, so a static clip gives the image model's response either way.
    """
    if center:
        weight = weight_2d.new_zeros(*weight_2d.shape[:2], tubelet, *weight_2d.shape[2:])
        weight[:, :, tubelet // 2] = weight_2d
        return weight
    return weight_2d.unsqueeze(2).repeat(1, 1, tubelet, 1, 1) / tubelet


def _model_grid(model: nn.Module) -> tuple[int, int, int]:
    grid = getattr(model, "grid_size", None) or model.patch_embed.grid_size
    return tuple(int(g) for g in grid)


def _resample_pos_tables(sd: dict, model: nn.Module, orig_t: int, report: LoadReport) -> None:
    grid_t, grid_h, grid_w = _model_grid(model)
    model_sd = model.state_dict()
    if "pos_embed" in sd and "pos_embed" in model_sd:
        table = sd["pos_embed"]
        extra = model_sd["pos_embed"].shape[1] - grid_t * grid_h * grid_w
        per_frame = (table.shape[1] - extra) / orig_t
        side = math.isqrt(int(per_frame))
        if per_frame != side * side:
            raise ValueError(
                f"checkpoint pos_embed {tuple(table.shape)} is not {extra} + {orig_t} frames x a square "
                "grid; set --orig_t_size to the frame count it was trained with"
            )
        if (orig_t, side, side) != (grid_t, grid_h, grid_w):
            sd["pos_embed"] = interpolate_pos_embed(
                table, extra, (orig_t, side, side), (grid_t, grid_h, grid_w)
            )
            report.notes.append(
                f"pos_embed resampled from {(orig_t, side, side)} to {(grid_t, grid_h, grid_w)}"
            )
    if "pos_embed_temporal" in sd and "pos_embed_temporal" in model_sd:
        old_t = sd["pos_embed_temporal"].shape[1]
        if old_t != grid_t:
            sd["pos_embed_temporal"] = interpolate_pos_embed(
                sd["pos_embed_temporal"], 0, (old_t, 1, 1), (grid_t, 1, 1)
            )
            report.notes.append(f"pos_embed_temporal resampled from {old_t} to {grid_t} frames")
    if "pos_embed_spatial" in sd and "pos_embed_spatial" in model_sd:
        side = math.isqrt(sd["pos_embed_spatial"].shape[1])
        if (side, side) != (grid_h, grid_w):
            sd["pos_embed_spatial"] = interpolate_pos_embed(
                sd["pos_embed_spatial"], 0, (side, side), (grid_h, grid_w)
            )
            report.notes.append(f"pos_embed_spatial resampled from {side}x{side} to {grid_h}x{grid_w}")


def prepare_checkpoint(sd: dict[str, torch.Tensor], model: nn.Module, args, report: LoadReport) -> dict:
    """Apply the original's fine-tuning conversions to a raw state dict (see the module doc)."""
    if args.model_prefix:
        sd = {k[len(args.model_prefix) :]: v for k, v in sd.items() if k.startswith(args.model_prefix)}
        if not sd:
            raise KeyError(f"no checkpoint key starts with --model_prefix {args.model_prefix!r}")
    # Prefixes go first so that a wrapped head ("encoder.head.weight") is recognised too.
    sd = strip_prefix(strip_prefix(sd, "backbone."), "encoder.")
    if "head.weight" in sd:
        if args.delete_head:
            sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
            report.notes.append("head removed (--delete_head)")
        elif sd["head.weight"].shape[0] == K710_CLASSES and args.nb_classes != K710_CLASSES:
            indices = k710_head_indices(
                args.nb_classes,
                getattr(args, "k710_label_list", None),
                getattr(args, "target_label_list", None),
            )
            sd = remap_k710_head(sd, indices)
            report.notes.append(f"K710 head mapped to {args.nb_classes} classes")
    tubelet = model.patch_embed.proj.weight.shape[2]
    patch = sd.get("patch_embed.proj.weight")
    if patch is not None and patch.ndim == 5 and patch.shape[2] == 1 and tubelet > 1:
        sd["patch_embed.proj.weight"] = inflate_patch_weight(patch[:, :, 0], tubelet, center=args.center_init)
        report.notes.append(f"patch_embed inflated to tubelet {tubelet} (center={args.center_init})")
    _resample_pos_tables(sd, model, args.orig_t_size, report)
    return sd


def load_pretrained(model: nn.Module, path: str, args) -> LoadReport:
    """Initialise ``model`` from the checkpoint at ``path`` (``--finetune``); returns the report."""
    report = LoadReport()
    sd = unwrap_state_dict(load_state_dict_file(path), args.model_key)
    extra = getattr(args, "finetune_extra", "")
    if extra:
        # A stage-2 multi-modality checkpoint: its vision_encoder.* tensors override the first's.
        extra_sd = unwrap_state_dict(load_state_dict_file(extra), args.model_key)
        vision = {
            k[len("vision_encoder.") :]: v for k, v in extra_sd.items() if k.startswith("vision_encoder.")
        }
        if not vision:
            raise KeyError(f"{extra}: no 'vision_encoder.' keys to take from --finetune_extra")
        sd.update(vision)
        report.notes.append(f"{len(vision)} tensors from {extra}")
    sd = prepare_checkpoint(sd, model, args, report)
    model_sd = model.state_dict()
    loadable = {}
    for key, value in sd.items():
        if key not in model_sd:
            report.unexpected.append(key)
        elif model_sd[key].shape != value.shape:
            report.mismatched.append(f"{key}: {tuple(value.shape)} -> {tuple(model_sd[key].shape)}")
        else:
            loadable[key] = value
    report.missing = [k for k in model_sd if k not in sd]
    if not loadable:
        raise ValueError(
            f"{path}: no tensor matches the model {args.model} (check --model_key / --model_prefix)"
        )
    model.load_state_dict(loadable, strict=False)
    if is_main_process():
        print(report.summary(path), flush=True)
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
