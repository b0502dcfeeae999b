"""UniFormerV2 fine-tuning glue for :func:`ivtools.train.classification.run_classification`.

The model arguments mirror the original's ``UNIFORMERV2.*`` config keys; ``--finetune`` accepts a
released UniFormerV2 checkpoint (``backbone.*``, e.g. the Kinetics-710 ones) or, with
``--clip_init``, an image CLIP visual state dict to start the backbone from.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import timm
import torch

from ..models.uniformerv2 import SIZES as MODEL_SIZES
from ..models.uniformerv2 import load_clip_into_uniformerv2, load_uniformerv2_checkpoint


def _flag(text: str) -> bool:
    return str(text).lower() in ("1", "true", "yes")


def add_uniformerv2_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("UniFormerV2 model (the original's UNIFORMERV2.* keys)")
    g.add_argument(
        "--model",
        default="uniformerv2_b16",
        choices=["uniformerv2_b16", "uniformerv2_l14", "uniformerv2_l14_336"],
    )
    g.add_argument("--n_layers", default=4, type=int)
    g.add_argument("--n_head", default=None, type=int, help="default: the backbone's head count")
    g.add_argument("--mlp_factor", default=4.0, type=float)
    g.add_argument("--backbone_drop_path_rate", default=0.0, type=float)
    g.add_argument("--drop_path_rate", default=0.0, type=float)
    g.add_argument(
        "--mlp_dropout", default=None, type=float, nargs="+", help="default: 0.5 per decoder layer"
    )
    g.add_argument("--cls_dropout", default=0.5, type=float)
    g.add_argument(
        "--return_list", default=None, type=int, nargs="+", help="default: the last n_layers blocks"
    )
    g.add_argument("--dw_reduction", default=1.5, type=float)
    g.add_argument("--temporal_downsample", default=False, type=_flag)
    g.add_argument("--no_lmhra", default=True, type=_flag)
    g.add_argument("--double_lmhra", default=True, type=_flag)
    g.add_argument("--frozen", default=False, type=_flag, help="predict from the video query alone")
    g.add_argument("--use_checkpoint", action="store_true")
    g.add_argument("--checkpoint_num", default=0, type=int)
    g.add_argument("--clip_init", action="store_true", help="--finetune is an image CLIP visual state dict")
    g.add_argument(
        "--delete_special_head", action="store_true", help="drop a pretrained head of another size"
    )
    g.add_argument("--label_map", default="", help="JSON list: rows of the pretrained head to keep")
    return parser


def build_uniformerv2_model(args) -> torch.nn.Module:
    resolution, depth = MODEL_SIZES[args.model][0], MODEL_SIZES[args.model][3]
    kwargs = {
        "num_classes": args.nb_classes,
        "t_size": args.num_frames,
        "n_layers": args.n_layers,
        "mlp_factor": args.mlp_factor,
        "backbone_drop_path_rate": args.backbone_drop_path_rate,
        "drop_path_rate": args.drop_path_rate,
        "mlp_dropout": args.mlp_dropout or [0.5] * args.n_layers,
        "cls_dropout": args.cls_dropout,
        "return_list": args.return_list or list(range(depth - args.n_layers, depth)),
        "dw_reduction": args.dw_reduction,
        "temporal_downsample": args.temporal_downsample,
        "no_lmhra": args.no_lmhra,
        "double_lmhra": args.double_lmhra,
        "frozen": args.frozen,
        "use_checkpoint": args.use_checkpoint,
        "checkpoint_num": args.checkpoint_num,
    }
    if args.n_head is not None:
        kwargs["n_head"] = args.n_head
    if args.input_size != resolution:
        kwargs["input_resolution"] = args.input_size
    return timm.create_model(args.model, **kwargs)


def load_uniformerv2_pretrained(model: torch.nn.Module, path: str, args) -> None:
    if args.clip_init:
        load_clip_into_uniformerv2(model, path)
        return
    label_map = json.loads(Path(args.label_map).read_text()) if args.label_map else None
    load_uniformerv2_checkpoint(model, path, label_map=label_map, delete_head=args.delete_special_head)
