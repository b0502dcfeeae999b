"""Multi-modality pretraining: the VideoMAE + CLIP-video model with cross-model attention, trained on
video-text pairs with the contrastive and captioning losses (and, selected by ``--loss_names``, the
original CoTrain's masked-language and video-text matching losses), then evaluated by retrieval.

Data are the ViCLIP JSON lists (``[{"video", "caption"}]``); the clip has ``--num_frames`` frames
for the VideoMAE stream, of which the CLIP stream sees ``--clip_frames`` evenly strided ones.
"""

from __future__ import annotations

import argparse

import timm
import torch

from internvideo1.models.multimodal import DEFAULT_LOSS_NAMES, InternVideoMultiModal
from internvideo1.models.viclip import adapt_viclip_state_dict
from internvideo1.models.videomae import load_videomae_checkpoint
from internvideo1.pretrain.common import (
    add_optimisation_args,
    add_run_args,
    add_video_text_data_args,
    train_then_retrieve,
)
from ivtools.checkpoint import load_state_dict_file, unwrap_state_dict


def add_multimodal_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("model")
    g.add_argument(
        "--model", default="internvideo_mm_b16", choices=["internvideo_mm_b16", "internvideo_mm_l14"]
    )
    g.add_argument("--mae_checkpoint", default="", help="a VideoMAE checkpoint for the masked-video stream")
    g.add_argument(
        "--clip_checkpoint", default="", help="a ViCLIP checkpoint for the CLIP stream and text encoder"
    )
    g.add_argument("--num_frames", default=16, type=int, help="frames of the VideoMAE stream")
    g.add_argument("--clip_frames", default=8, type=int, help="frames of the CLIP stream")
    g.add_argument("--input_size", default=224, type=int)
    g.add_argument("--fusion_depth", default=2, type=int)
    g.add_argument("--decoder_layers", default=4, type=int)
    g.add_argument(
        "--loss_names",
        nargs="+",
        default=[],
        type=parse_loss_weight,
        metavar="NAME=WEIGHT",
        help=f"objective weights under the original's names (0 turns one off); defaults {DEFAULT_LOSS_NAMES}",
    )
    g.add_argument("--mlm_prob", default=0.15, type=float, help="masking probability of a text token (mlm)")
    g.add_argument("--train_mae", action="store_true", help="the VideoMAE stream is frozen unless given")
    add_video_text_data_args(parser)
    add_optimisation_args(parser, lr=1e-5, min_lr=1e-7, warmup_lr=1e-7, weight_decay=0.02)
    return add_run_args(parser)


def parse_loss_weight(text: str) -> tuple[str, float]:
    """``"mlm=1"`` → ``("mlm", 1.0)`` (one ``--loss_names`` entry)."""
    name, sep, weight = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=WEIGHT, got {text!r}")
    try:
        return name, float(weight)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"weight of {name!r} is not a number: {weight!r}") from err


def load_encoder_weights(model: InternVideoMultiModal, mae_path: str = "", clip_path: str = "") -> dict:
    """Start the two streams from pretrained checkpoints; returns the keys each load left missing.

    A VideoMAE file (pretraining or fine-tuned) goes to ``mae_video`` as VideoMAE loads it; the ViCLIP file's
    ``vision_encoder.*`` to ``clip_video`` (without its projection) and ``text_encoder.*`` to
    ``text_encoder``, resized to this model's frames, resolution and context as ViCLIP does.
    """
    report = {}
    if mae_path:
        report["mae_missing"] = list(load_videomae_checkpoint(model.mae_video, mae_path)[0])
    if clip_path:
        # A ModuleDict with ViCLIP's attribute names gives the released key layout, so ViCLIP's
        # own adaptation (frame count, resolution, text context) applies unchanged.
        towers = torch.nn.ModuleDict({"vision_encoder": model.clip_video, "text_encoder": model.text_encoder})
        state = unwrap_state_dict(load_state_dict_file(clip_path), "model|module|state_dict")
        state = {k: v for k, v in state.items() if k != "vision_encoder.proj"}
        report["clip_missing"] = towers.load_state_dict(
            adapt_viclip_state_dict(state, towers), strict=False
        ).missing_keys
    return report


def build_multimodal_from_args(args) -> InternVideoMultiModal:
    model = timm.create_model(
        args.model,
        vision={"num_frames": args.clip_frames, "input_resolution": args.input_size},
        mae={"all_frames": args.num_frames, "img_size": args.input_size},
        text={"context_length": args.max_txt_l},
        fusion_depth=args.fusion_depth,
        decoder_layers=args.decoder_layers,
        loss_names=dict(args.loss_names),
        mlm_prob=args.mlm_prob,
        freeze_mae=not args.train_mae,
    )
    report = load_encoder_weights(model, args.mae_checkpoint, args.clip_checkpoint)
    for name, missing in report.items():
        if missing:
            print(
                f"[multimodal] {name}: {len(missing)} keys left at initialisation, e.g. {missing[:3]}",
                flush=True,
            )
    return model


def multimodal_step_fn():
    """``step(model, batch, backend)``: the weighted sum of the model's objectives, each logged;
    padding (id 0) is ignored."""

    def step(model, batch, backend):
        video = backend.prepare(batch["video"])
        ids = batch["text_ids"].to(video.device)
        out = model(video, ids, ids == 0, batch["index"].to(video.device))
        return out["loss"], {name: value for name, value in out.items() if name != "loss"}

    return step


def run_multimodal_pretraining(args) -> dict:
    """Train on ``--train_file`` (unless ``--evaluate``), then retrieval on ``--test_file``."""
    return train_then_retrieve(args, build_multimodal_from_args, multimodal_step_fn())
