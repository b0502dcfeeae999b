"""VideoMAE reconstruction pictures (the original's ``run_mae_vis.py``).

A clip is masked, the pretraining model predicts the masked tubelets, and three pictures per
frame are written: ``ori_img{i}.jpg`` (the input), ``mask_img{i}.jpg`` (visible tubelets only)
and ``rec_img{i}.jpg`` (visible tubelets, masked ones replaced by the prediction). As in the
original, predictions of a model trained on normalised targets are mapped back to pixels with
each tubelet's own mean and standard deviation from the input (VideoMAE issue #40).

Differences from the original, which are fixes: frames are ``--num_frames`` frames from
``--start_frame`` every ``--sampling_rate`` frames (the original ignored ``--sampling_rate`` and
took frames 60, 62, ... 90), and the short side is resized to ``--input_size`` before the centre
crop (the original cropped without resizing, which fails for frames smaller than the crop).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

from ivtools.data.masking import MASK_GENERATORS, build_mask_generator
from ivtools.data.transforms import EvalTransform
from ivtools.video import open_video

from ..losses import patchify, to_pixels, unpatchify
from ..models.videomae import load_videomae_checkpoint


def add_mae_vis_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("img_path", help="input video (the original's name for it)")
    parser.add_argument("save_path", help="folder for the pictures")
    parser.add_argument("model_path", help="pretraining checkpoint ({'model': state dict} or a bare one)")
    parser.add_argument("--model", default="pretrain_videomae_base_patch16_224")
    parser.add_argument("--decoder_depth", type=int, default=4)
    parser.add_argument("--mask_type", default="tube", choices=sorted(MASK_GENERATORS))
    parser.add_argument("--mask_ratio", type=float, default=0.75)
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--sampling_rate", type=int, default=2)
    parser.add_argument("--start_frame", type=int, default=60, help="first frame (clamped to fit the video)")
    parser.add_argument("--input_size", type=int, default=224)
    parser.add_argument("--no_normalize_target", action="store_false", dest="normalize_target",
                        help="the model was trained on raw pixel targets")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def reconstruct(
    video: torch.Tensor,
    mask: torch.Tensor,
    pred: torch.Tensor,
    patch_size: int,
    tubelet_size: int,
    normalize_target: bool = True,
) -> dict[str, torch.Tensor]:
    """Pictures ``(B, 3, T, H, W)`` in [0, 1] from a normalised clip, its mask and the prediction.

    ``video`` is ImageNet-normalised ``(B, 3, T, H, W)``; ``mask`` bool ``(B, N)``; ``pred``
    ``(B, N_masked, tubelet*patch*patch*3)`` in :func:`~internvideo1.losses.mae_targets` layout.
    Returns ``original``, ``masked`` (masked tubelets black) and ``reconstruction``.
    """
    original = to_pixels(video)
    patches = patchify(original, patch_size, tubelet_size)  # (B, N, P, 3)
    target = patches[mask]  # (B * N_masked, P, 3), the order of the prediction
    predicted = pred.reshape(target.shape).to(patches.dtype)
    if normalize_target:
        predicted = predicted * (target.var(dim=1, unbiased=True, keepdim=True).sqrt() + 1e-6)
        predicted = predicted + target.mean(dim=1, keepdim=True)
    rebuilt = patches.clone()
    rebuilt[mask] = predicted
    grid = (
        video.shape[2] // tubelet_size,
        video.shape[3] // patch_size,
        video.shape[4] // patch_size,
    )
    visible = (~mask).to(patches.dtype)[:, :, None, None].expand_as(patches)
    return {
        "original": original,
        "masked": unpatchify(patches * visible, grid, patch_size, tubelet_size),
        "reconstruction": unpatchify(rebuilt, grid, patch_size, tubelet_size).clamp(0, 1),
    }


def frame_indices(num_video_frames: int, num_frames: int, start: int, stride: int) -> list[int]:
    """``num_frames`` indices every ``stride`` frames from ``start``, shifted back to fit the video."""
    span = (num_frames - 1) * stride
    first = max(0, min(start, num_video_frames - 1 - span))
    return [min(first + i * stride, num_video_frames - 1) for i in range(num_frames)]


def save_pictures(pictures: dict[str, torch.Tensor], folder: Path) -> list[Path]:
    """Write ``ori_img{i}.jpg``, ``mask_img{i}.jpg`` and ``rec_img{i}.jpg`` for every frame of clip 0."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {"original": "ori_img", "masked": "mask_img", "reconstruction": "rec_img"}
    written = []
    for key, prefix in names.items():
        frames = (
            (pictures[key][0].permute(1, 2, 3, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        )
        for i, frame in enumerate(frames):
            path = folder / f"{prefix}{i}.jpg"
            Image.fromarray(frame).save(path)
            written.append(path)
    return written


def run_mae_vis(args) -> list[Path]:
    """Load the model and the clip, mask, reconstruct, and write the pictures; returns their paths."""
    import internvideo1.models  # noqa: F401 - registers the models

    device = torch.device(args.device)
    model = timm.create_model(args.model, decoder_depth=args.decoder_depth, num_frames=args.num_frames,
                              img_size=args.input_size)  # fmt: skip
    load_videomae_checkpoint(model, args.model_path)
    model.to(device).eval()
    patch, tubelet = model.patch_embed.patch_size[0], model.patch_embed.tubelet_size
    with open_video(args.img_path) as reader:
        frames = reader.get_frames(
            frame_indices(len(reader), args.num_frames, args.start_frame, args.sampling_rate)
        )
    video = EvalTransform(args.input_size, args.input_size)(frames).unsqueeze(0).to(device)
    window = (args.num_frames // tubelet, args.input_size // patch, args.input_size // patch)
    masks = build_mask_generator(args.mask_type, window, args.mask_ratio)
    mask = torch.from_numpy(masks(np.random.default_rng(args.seed))).flatten().bool()[None].to(device)
    with torch.no_grad():
        pred = model(video, mask)
    pictures = reconstruct(video, mask, pred.float(), patch, tubelet, args.normalize_target)
    return save_pictures(pictures, Path(args.save_path))
