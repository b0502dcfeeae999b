"""VideoMAE reconstruction pictures: patch round trip, de-normalisation, frame choice, the script."""

import argparse

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import internvideo1.models  # noqa: F401 - registers the models
from internvideo1.losses import mae_targets, patchify, unpatchify
from internvideo1.pretrain.mae_vis import add_mae_vis_args, frame_indices, reconstruct, run_mae_vis
from ivtools.data.transforms import IMAGENET_MEAN, IMAGENET_STD

MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1, 1)
STD = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1, 1)


def normalised_clip(seed=0):
    pixels = torch.rand(2, 3, 4, 32, 48, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return pixels, (pixels - MEAN) / STD


def test_unpatchify_inverts_patchify():
    x = torch.randn(2, 3, 4, 32, 48)
    assert torch.equal(unpatchify(patchify(x, 16, 2), (2, 2, 3), 16, 2), x)


@pytest.mark.parametrize("normalize_target", [True, False])
def test_a_perfect_prediction_reconstructs_the_clip(normalize_target):
    pixels, video = normalised_clip()
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[0, [0, 5, 7]] = True
    mask[1, [1, 2, 11]] = True
    targets = mae_targets(video, 16, 2, normalize_target=normalize_target)  # what training regresses
    pred = targets[mask].reshape(2, 3, -1)
    pictures = reconstruct(video, mask, pred, 16, 2, normalize_target)
    torch.testing.assert_close(pictures["original"], pixels)
    torch.testing.assert_close(pictures["reconstruction"], pixels, atol=1e-9, rtol=0)
    # tubelet 0 of clip 0 covers frames 0-1, rows 0-15, columns 0-15: black in the masked picture
    masked = pictures["masked"]
    assert torch.all(masked[0, :, 0:2, 0:16, 0:16] == 0)
    original = pictures["original"]
    assert torch.equal(masked[0, :, 0:2, 0:16, 16:32], original[0, :, 0:2, 0:16, 16:32])  # tubelet 1 visible


def test_a_wrong_prediction_changes_only_the_masked_tubelets():
    pixels, video = normalised_clip(1)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[:, 4] = True  # frames 0-1, rows 16-31, columns 16-31
    pictures = reconstruct(video, mask, torch.zeros(2, 1, 16 * 16 * 2 * 3, dtype=torch.float64), 16, 2)
    rec = pictures["reconstruction"]
    # a zero normalised prediction is each tubelet's own mean colour
    expected = pixels[:, :, 0:2, 16:32, 16:32].mean(dim=(2, 3, 4), keepdim=True)
    torch.testing.assert_close(rec[:, :, 0:2, 16:32, 16:32], expected.expand(-1, -1, 2, 16, 16))
    outside = torch.ones_like(rec, dtype=torch.bool)
    outside[:, :, 0:2, 16:32, 16:32] = False
    assert torch.equal(rec[outside], pictures["original"][outside])


def test_frame_indices_start_where_asked_and_fit_the_video():
    assert frame_indices(300, 16, 60, 2) == list(range(60, 92, 2))  # the original's frames
    assert frame_indices(40, 16, 60, 2) == list(range(9, 41, 2))  # shifted back to end at frame 39
    assert frame_indices(10, 4, 60, 4) == [0, 4, 8, 9]  # too short: from 0, clamped to the last


def test_script_writes_three_pictures_per_frame(make_video, tmp_path):
    video = make_video("clip.mp4", num_frames=24, height=48, width=96)
    model = timm.create_model(
        "pretrain_videomae_small_patch16_224", decoder_depth=1, num_frames=4, img_size=32
    )
    torch.save({"model": model.state_dict()}, tmp_path / "pt.pth")
    argv = [str(video), str(tmp_path / "vis"), str(tmp_path / "pt.pth"), "--model", "pretrain_videomae_small_patch16_224",
            "--decoder_depth", "1", "--num_frames", "4", "--input_size", "32", "--device", "cpu"]  # fmt: skip
    written = run_mae_vis(add_mae_vis_args(argparse.ArgumentParser()).parse_args(argv))
    names = sorted(p.name for p in written)
    assert names == sorted(f"{kind}{i}.jpg" for kind in ("ori_img", "mask_img", "rec_img") for i in range(4))
    original = np.asarray(Image.open(tmp_path / "vis" / "ori_img0.jpg"))
    masked = np.asarray(Image.open(tmp_path / "vis" / "mask_img0.jpg"))
    assert original.shape == masked.shape == (32, 32, 3)
    assert masked.mean() < original.mean()  # 75 % of the tubelets are black
