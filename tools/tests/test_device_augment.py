"""Device-side augmentation: DeviceAugment on a uint8 batch against the worker-side TrainTransform.

Reference: the CPU path (``TrainTransform`` without ``device_augment``), whose clip ops are checked
against timm's PIL ops in test_transforms_speed_equivalence.py, run with the same seeded draws.
"""

from __future__ import annotations

import argparse
import math
import random

import numpy as np
import pytest
import torch

from ivtools.data.transforms import (
    CLIP_OPS,
    DeviceAugment,
    TrainTransform,
    TrainTransformConfig,
    _lut,
    lut_gather,
    normalize,
)
from ivtools.testing.tiny import TinyVideoViT
from ivtools.train.classification import (
    add_classification_args,
    build_classification_datasets,
    run_classification,
)
from ivtools.video.synthetic import coded_frames

MANY_OPS = "rand-m9-n6-mstd0.5-inc1"


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    """Two 4-frame 72x96 clips: smooth drifting colour, hard-edged blocks and pixel noise."""
    out = []
    for seed in (1, 2):
        noise = np.random.default_rng(seed).integers(-25, 26, (4, 72, 96, 3))
        out.append(np.clip(coded_frames(4, 72, 96, seed=seed) + noise, 0, 255).astype(np.uint8))
    return out


def _config(**kw) -> TrainTransformConfig:
    return TrainTransformConfig(**{"input_size": 48, "interpolation": "bilinear", **kw})


def test_worker_side_transform_stops_after_the_flip(clips):
    out = TrainTransform(_config(device_augment=True))(clips[0])
    assert type(out) is torch.Tensor and out.dtype == torch.uint8 and out.shape == (4, 3, 48, 48)


def test_device_augment_equals_the_cpu_path_with_the_same_draws(clips):
    cfg = _config(rand_augment=MANY_OPS, reprob=0.0)
    cpu, device = TrainTransform(cfg), DeviceAugment(cfg)
    workers = TrainTransform(_config(**{**vars(cfg), "device_augment": True}))
    drawn = set()
    for seed in range(8):
        _seed(seed)
        expected = torch.stack([cpu(frames) for frames in clips])
        _seed(seed)
        got = device(torch.stack([workers(frames) for frames in clips]))
        assert got.shape == (2, 3, 4, 48, 48) and got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        # RandAugment chooses its ops with NumPy only, first thing per clip: replay the choices.
        np.random.seed(seed)
        drawn |= {op.name for _ in clips for op in np.random.choice(device.rand_augment.transform.ops, 6)}
    assert len(drawn) >= 12, sorted(drawn)  # 15 ops in the inc1 set: most of them ran


def test_device_augment_changes_the_clips():
    """RandAugment ran: the output is not just the normalised input."""
    batch = torch.randint(0, 256, (2, 3, 3, 32, 32), dtype=torch.uint8)
    _seed(4)
    out = DeviceAugment(_config(input_size=32, rand_augment=MANY_OPS, reprob=0.0))(batch)
    assert not torch.equal(out, normalize(batch))


def test_device_erasing_erases_one_box_in_every_frame():
    batch = torch.randint(0, 256, (3, 4, 3, 40, 40), dtype=torch.uint8)
    _seed(0)
    out = DeviceAugment(_config(input_size=40, rand_augment=None, reprob=1.0, remode="pixel"))(batch)
    erased = (out != normalize(batch)).any(1)  # (B, T, H, W)
    for clip in erased:
        assert clip.any()
        assert (clip == clip[:1]).all()  # the same box in every frame (cube)
        rows, cols = clip[0].any(1).nonzero(), clip[0].any(0).nonzero()
        box = torch.zeros_like(clip[0])
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert torch.equal(clip[0], box)  # a rectangle, fully erased
    # pixel mode: fresh values per frame inside the box
    inside = erased[0, 0]
    assert not torch.equal(out[0, :, 0][:, inside], out[0, :, 1][:, inside])


def test_device_augment_rejects_a_float_batch():
    with pytest.raises(ValueError, match=r"\(B, T, 3, S, S\) uint8 batch, got \(2, 3, 4, 8, 8\)"):
        DeviceAugment(_config(input_size=8))(torch.zeros(2, 3, 4, 8, 8))


def test_lut_gather_equals_the_numpy_path():
    video = torch.randint(0, 256, (3, 3, 9, 11), dtype=torch.uint8)
    table = torch.randint(0, 256, (3, 3, 256), dtype=torch.uint8)
    torch.testing.assert_close(lut_gather(video, table), _lut(video, table), rtol=0, atol=0)
    invert = (255 - torch.arange(256)).to(torch.uint8).expand(3, 3, 256)
    assert torch.equal(lut_gather(video, invert), 255 - video)  # hand-computed table


PIXEL_OPS = [
    ("AutoContrast", ()), ("Equalize", ()), ("Invert", ()), ("Posterize", (3,)), ("Solarize", (96,)),
    ("SolarizeAdd", (77,)), ("Color", (0.3,)), ("Contrast", (1.8,)), ("Brightness", (0.6,)),
    ("Sharpness", (1.85,)),
]  # fmt: skip
GEOMETRIC_OPS = [("ShearX", (0.21,)), ("TranslateYRel", (-0.25,)), ("Rotate", (23.0,))]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_clip_ops_on_cuda_match_the_cpu(clips):
    from PIL import Image

    video = torch.from_numpy(np.stack(clips[0])).permute(0, 3, 1, 2).contiguous()
    kw = {"fillcolor": (124, 116, 104), "resample": Image.Resampling.BICUBIC}
    for name, args in PIXEL_OPS:
        got = CLIP_OPS[name](video.cuda(), *args, **kw)
        assert got.is_cuda and torch.equal(got.cpu(), CLIP_OPS[name](video, *args, **kw)), name
    for name, args in GEOMETRIC_OPS:
        got = CLIP_OPS[name](video.cuda(), *args, **kw).cpu().int()
        assert (got - CLIP_OPS[name](video, *args, **kw).int()).abs().max() <= 1, name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_augment_on_cuda_matches_the_cpu(clips):
    cfg = _config(rand_augment=MANY_OPS, reprob=0.0)
    workers, device = TrainTransform(_config(**{**vars(cfg), "device_augment": True})), DeviceAugment(cfg)
    batch = torch.stack([workers(frames) for frames in clips])
    step = 1 / (255 * max(cfg.std))  # one uint8 level after normalisation
    for seed in range(6):
        _seed(seed)
        expected = device(batch)
        _seed(seed)
        got = device(batch.cuda())
        assert got.is_cuda
        # geometric ops differ by one level at most; a later LUT op can stretch that further
        close = (got.cpu() - expected).abs() <= 1.01 * step
        assert close.float().mean() > 0.99, seed
    _seed(0)
    erased = DeviceAugment(_config(rand_augment=None, reprob=1.0))(batch.cuda())
    assert erased.is_cuda and not torch.equal(erased.cpu(), normalize(batch))


def _finetune_args(data, out, *extra: str) -> argparse.Namespace:
    argv = [
        f"--data_path={data}", f"--prefix={data}", f"--output_dir={out}", "--nb_classes=4",
        "--num_frames=4", "--input_size=32", "--short_side_size=32", "--data_set=Kinetics_sparse",
        "--batch_size=4", "--epochs=1", "--num_sample=2", "--num_workers=0", "--reprob=0.5",
        "--aa=rand-m9-n2-mstd0.5-inc1", "--warmup_epochs=0", "--test_num_segment=1",
        "--test_num_crop=1", "--device=cpu", "--disable_eval_during_finetuning", "--seed=1",
        "--no_auto_resume", *extra,
    ]  # fmt: skip
    return add_classification_args(argparse.ArgumentParser()).parse_args(argv)


def _tiny(args: argparse.Namespace) -> TinyVideoViT:
    return TinyVideoViT(num_classes=args.nb_classes, img_size=args.input_size, num_frames=args.num_frames)


def test_classification_run_with_device_augment(motion_dataset, tmp_path):
    """Seven videos and one unreadable one, batch 4 (mixup on): both modes train and count one skip."""
    root = motion_dataset["root"]
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    lines = [f"{root}/{line}" for line in (root / "train.csv").read_text().splitlines()[:7]]
    (tmp_path / "train.csv").write_text("\n".join([*lines, "broken.mp4 1"]) + "\n")
    (tmp_path / "val.csv").write_text("\n".join(lines[:4]) + "\n")

    args = _finetune_args(tmp_path, tmp_path / "device", "--device_augment", "--decode_threads=2")
    item = build_classification_datasets(args)["train"][0]
    assert [(s["video"].dtype, s["video"].shape) for s in item] == [(torch.uint8, (4, 3, 32, 32))] * 2

    skipped = {}
    for mode, extra in (("cpu", ()), ("device", ("--device_augment",))):
        results = run_classification(_finetune_args(tmp_path, tmp_path / mode, *extra), _tiny)
        (epoch,) = results["history"]
        assert math.isfinite(epoch["train_loss"]) and epoch["train_loss"] > 0
        skipped[mode] = epoch["skipped_videos"]
        assert 0 <= results["test_top1"] <= 100
    assert skipped == {"cpu": 1, "device": 1}
