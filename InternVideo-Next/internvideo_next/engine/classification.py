"""Fine-tuning and attentive probing on action recognition through ``ivtools.train.classification``."""

from __future__ import annotations

import argparse

import timm

import internvideo_next.models  # noqa: F401  (registers the factories)
from internvideo_next.models import InternVideoNextClassifier
from ivtools.checkpoint import load_state_dict_file, strip_prefix, unwrap_state_dict
from ivtools.distributed import is_main_process


def add_model_args(parser: argparse.ArgumentParser, mode: str) -> argparse.ArgumentParser:
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="internvideo_next_base_patch14_224")
    g.add_argument("--drop_path", type=float, default=0.1 if mode == "finetune" else 0.0)
    g.add_argument("--head_drop_rate", type=float, default=0.0)
    g.add_argument("--tubelet_size", type=int, default=1)
    g.add_argument("--cls_token_num", type=int, default=4)
    g.add_argument("--model_key", default="model|module", help="checkpoint keys to unwrap, '|'-separated")
    parser.set_defaults(classifier_mode=mode)
    return parser


def build_model(args: argparse.Namespace) -> InternVideoNextClassifier:
    encoder = timm.create_model(
        args.model,
        num_frames=args.num_frames,
        img_size=args.input_size,
        tubelet_size=args.tubelet_size,
        drop_path_rate=args.drop_path,
        cls_token_num=args.cls_token_num,
    )
    return InternVideoNextClassifier(encoder, args.nb_classes, args.classifier_mode, args.head_drop_rate)


def load_pretrained(model: InternVideoNextClassifier, path: str, args: argparse.Namespace) -> None:
    """Released encoder weights (or a stage-1/2 checkpoint's trunk) into ``model.encoder``.

    Pretraining-only heads are dropped; the position table is resampled to this run's grid.
    """
    state = unwrap_state_dict(load_state_dict_file(path), keys=args.model_key.split("|"))
    state = strip_prefix(strip_prefix(state, "module."), "encoder.")
    encoder = model.encoder
    wanted = encoder.state_dict()
    state = {k: v for k, v in state.items() if k in wanted}
    if "pos_embed" in state and state["pos_embed"].shape != wanted["pos_embed"].shape:
        state["pos_embed"] = _resample(state["pos_embed"], encoder)
    missing = encoder.load_state_dict(state, strict=False).missing_keys
    if missing:
        raise KeyError(f"{path} lacks encoder weights: {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if is_main_process():
        print(f"loaded encoder weights from {path}", flush=True)


def _resample(table, encoder):
    from ivtools.checkpoint import interpolate_pos_embed

    dim, n = table.shape[-1], encoder.cls_token_num
    tokens = table.shape[1] - n
    # Released tables are 16 frames on a square grid.
    for frames in (16, 8, encoder.num_frames):
        side = round((tokens / frames) ** 0.5)
        if frames * side * side == tokens:
            return interpolate_pos_embed(table, n, (frames, side, side), encoder.grid_size)
    raise ValueError(f"cannot infer the grid of a pos_embed with {tokens} patch rows (width {dim})")
