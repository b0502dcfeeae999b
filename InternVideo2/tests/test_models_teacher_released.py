"""Teachers from files in the released layouts (InternVL-C, VideoMAEv2 pretraining), loaded strictly."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from internvideo2.engine.pretrain_pipeline import add_pretrain_args, build_teachers
from internvideo2.models import CheckpointMismatchError, teacher_internvideo2_6B
from ivtools.checkpoint import get_conversion

TINY = {"embed_dim": 48, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0, "attn_pool_num_heads": 2}
OFF = {"use_flash_attn": False, "use_fused_rmsnorm": False, "use_fused_mlp": False}
CLIP = {**TINY, "clip_embed_dim": 24, **OFF}
MAE = {"embed_dim": 40, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0, "all_frames": 4}


def parse(tmp_path, clip_ckpt, mae_ckpt, mae_extra=None) -> argparse.Namespace:
    parser = add_pretrain_args(argparse.ArgumentParser(), distill=False)
    return parser.parse_args([
        "--data_path", "x", "--output_dir", str(tmp_path), "--input_size", "28",
        "--clip_input_resolution", "28", "--mae_input_resolution", "28", "--num_frames", "4",
        "--clip_return_layer", "2", "--mae_return_layer", "2",
        "--clip_teacher_kwargs", json.dumps(CLIP), "--mae_teacher_kwargs", json.dumps({**MAE, **(mae_extra or {})}),
        "--clip_teacher_ckpt", str(clip_ckpt), "--mae_teacher_ckpt", str(mae_ckpt),
    ])  # fmt: skip


def random_teachers(tmp_path) -> argparse.Namespace:
    args = parse(tmp_path, "", "")
    args.clip_teacher_ckpt = args.mae_teacher_ckpt = None
    args.teacher_random_init = True
    return args


def released_files(tmp_path, reference_clip, reference_mae):
    """Write the two teachers the way the original's files hold them."""
    clip = {k: v.clone() for k, v in reference_clip.state_dict().items()}
    clip["patch_embed.proj.weight"] = clip["patch_embed.proj.weight"][:, :, 0]  # image model: 2D kernel
    clip["qllama.layers.0.weight"] = torch.zeros(2)  # InternVL-C's text side
    torch.save({"module": clip}, tmp_path / "internvl_c_13b_224px.pth")
    mae = {f"encoder.{k}": v for k, v in reference_mae.state_dict().items()}
    mae.update(
        {"decoder.blocks.0.norm1.weight": torch.ones(3), "encoder_to_decoder.weight": torch.ones(3, 4)}
    )
    mae["mask_token"] = torch.zeros(1, 1, 3)
    torch.save({"model": mae, "epoch": 1199}, tmp_path / "vit_g_hybrid_1200e_pre.pth")
    return tmp_path / "internvl_c_13b_224px.pth", tmp_path / "vit_g_hybrid_1200e_pre.pth"


def test_released_teacher_files_load_strictly_through_the_pipeline(tmp_path):
    reference = build_teachers(random_teachers(tmp_path))
    clip_path, mae_path = released_files(tmp_path, *reference)
    torch.manual_seed(1)  # the loaded teachers start from other random weights
    clip, mae = build_teachers(parse(tmp_path, clip_path, mae_path))
    for loaded, ref in ((clip, reference[0]), (mae, reference[1])):
        for key, value in ref.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key


def test_mae_kernel_is_averaged_for_a_tubelet_1_teacher_and_gaps_are_errors(tmp_path):
    clip_ref, mae_ref = build_teachers(random_teachers(tmp_path))
    clip_path, mae_path = released_files(tmp_path, clip_ref, mae_ref)
    _, mae1 = build_teachers(parse(tmp_path, clip_path, mae_path, {"tubelet_size": 1}))
    kernel = mae_ref.state_dict()["patch_embed.proj.weight"]  # (40, 3, 2, 14, 14)
    expected = (kernel[:, :, :1] + kernel[:, :, 1:]) / 2
    torch.testing.assert_close(mae1.state_dict()["patch_embed.proj.weight"], expected)
    broken = torch.load(clip_path, weights_only=False)
    del broken["module"]["blocks.1.mlp.fc2.weight"]
    torch.save(broken, clip_path)
    with pytest.raises(CheckpointMismatchError, match=r"missing \(1\): blocks\.1\.mlp\.fc2\.weight"):
        build_teachers(parse(tmp_path, clip_path, mae_path))


def test_conversions_are_registered():
    mae = get_conversion("videomae_v2_to_teacher")(
        {"encoder.norm.weight": torch.ones(1), "decoder.norm.weight": torch.ones(1)}
    )
    assert list(mae) == ["norm.weight"]
    clip = get_conversion("internvl_clip_to_teacher")(
        {"blocks.0.w": torch.ones(1), "text_projection": torch.ones(1)}
    )
    assert list(clip) == ["blocks.0.w"]


def test_6b_teacher_is_the_original_shape():
    model = teacher_internvideo2_6B(device="meta")
    sd = model.state_dict()
    assert sum(k.startswith("blocks.") and k.endswith(".attn.qkv.weight") for k in sd) == 48
    assert sd["blocks.0.attn.qkv.weight"].shape == (3 * 3200, 3200)  # 25 heads x 128, no qkv bias
    assert sd["blocks.47.mlp.fc1.weight"].shape == (4 * 3200, 3200)  # mlp_ratio 4
    assert sd["clip_projector.cross_attn.proj.weight"].shape == (768, 3200)
    assert sd["pos_embed"].shape == (1, 1 + 8 * 16 * 16, 3200)
