"""Video-text encoders for the downstream tasks, built by name and loaded from local checkpoints.

``viclip_b16`` / ``viclip_l14`` load released ViCLIP files; ``videointern_b16`` / ``_l14`` the released
InternVideo-MM-B-16 / L-14 files; ``internvideo_mm_b16`` / ``_l14`` load checkpoints written by the
multi-modality pretraining (``{"model": state_dict}``). All expose ``encode_video``, ``encode_text``
and ``context_length``; the multi-modality model also
``encode_fused`` (cross-modality decoder features), which open-ended QA uses when present.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence

import timm
import torch
import torch.nn.functional as F
from torch import nn

from internvideo1.models.viclip import load_viclip_checkpoint
from internvideo1.models.videointern import load_videointern_checkpoint
from ivtools.checkpoint import load_state_dict_file, unwrap_state_dict

ENCODERS = (
    "viclip_b16",
    "viclip_l14",
    "videointern_b16",
    "videointern_l14",
    "internvideo_mm_b16",
    "internvideo_mm_l14",
)


def add_encoder_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("encoder")
    g.add_argument("--model", default="viclip_b16", choices=ENCODERS)
    g.add_argument("--checkpoint", default="", help="local weights (none: random init, for smoke runs)")
    g.add_argument("--bpe_path", required=True, help="CLIP's bpe_simple_vocab_16e6.txt.gz")
    g.add_argument("--num_frames", default=8, type=int)
    g.add_argument("--clip_frames", default=8, type=int, help="CLIP-stream frames (multi-modality model)")
    g.add_argument("--input_size", default=224, type=int)
    g.add_argument("--max_txt_l", default=32, type=int)
    return parser


def build_video_text_encoder(
    name: str,
    checkpoint: str | os.PathLike = "",
    num_frames: int = 8,
    input_size: int = 224,
    context_length: int = 32,
    clip_frames: int | None = None,
) -> nn.Module:
    """A dual encoder by name, with weights from ``checkpoint`` when given."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose from {ENCODERS}")
    if name.startswith("viclip"):
        model = timm.create_model(
            name,
            num_frames=num_frames,
            input_resolution=input_size,
            context_length=context_length,
            freeze_text=False,
        )
        if checkpoint:
            load_viclip_checkpoint(model, checkpoint)
        return model
    if name.startswith("videointern"):
        # The released text context (77) is kept so that its position table loads as it is.
        model = timm.create_model(name, vision={"t_size": num_frames, "input_resolution": input_size})
        if checkpoint:
            load_videointern_checkpoint(model, checkpoint)
        return model
    model = timm.create_model(
        name,
        vision={"num_frames": clip_frames or num_frames, "input_resolution": input_size},
        mae={"all_frames": num_frames, "img_size": input_size},
        text={"context_length": context_length},
    )
    if checkpoint:
        model.load_state_dict(unwrap_state_dict(load_state_dict_file(checkpoint)), strict=True)
    return model


def encoder_from_args(args) -> nn.Module:
    return build_video_text_encoder(
        args.model, args.checkpoint, args.num_frames, args.input_size, args.max_txt_l, args.clip_frames
    )


@torch.no_grad()
def encode_texts(
    model: nn.Module, tokenizer: Callable, texts: Sequence[str], batch_size: int = 64
) -> torch.Tensor:
    """L2-normalised text features ``(N, D)`` of ``texts`` (tokenized to ``model.context_length``)."""
    model.eval()
    device = next(model.parameters()).device
    feats = []
    for i in range(0, len(texts), batch_size):
        ids, _ = tokenizer(list(texts[i : i + batch_size]), model.context_length)
        feats.append(model.encode_text(ids.to(device)))
    return F.normalize(torch.cat(feats).float(), dim=-1)
