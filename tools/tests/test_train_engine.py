"""The shared training loop: exact resume, accumulation, schedules, layer decay, backends."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ivtools.data import (
    ClipSampling,
    EvalTransform,
    VideoClassificationDataset,
    build_loader,
    read_video_list,
)
from ivtools.distributed import DistInfo
from ivtools.testing.tiny import TinyVideoViT
from ivtools.train import (
    NativeBackend,
    Trainer,
    TrainerConfig,
    WeightDecaySchedule,
    build_lr_scheduler,
    build_optimizer,
    layer_lr_scales,
)
from ivtools.train.classification import VideoMixup, classification_step_fn

CPU = DistInfo()


def _dataset(motion_dataset, num_frames=4, size=32):
    records = read_video_list(motion_dataset["train"], prefix=str(motion_dataset["root"]), num_classes=4)
    clip = ClipSampling("sparse", num_frames=num_frames)

    # Random crops make every epoch's data differ, so the test also covers augmentation replay.
    def transform(frames):
        from ivtools.data.transforms import normalize, to_video_tensor

        video = to_video_tensor(frames)
        top, left = (
            np.random.randint(0, video.shape[-2] - size + 1),
            np.random.randint(0, video.shape[-1] - size + 1),
        )
        return normalize(video[..., top : top + size, left : left + size])

    return VideoClassificationDataset(records, "train", clip, transform, num_classes=4, seed=3)


def _run(motion_dataset, output_dir, epochs=2, resume="", preempt_after=None, mixup=True, workers=0):
    torch.manual_seed(0)
    np.random.seed(0)
    model = TinyVideoViT(num_classes=4, img_size=32, num_frames=4, drop_path_rate=0.2)
    loader = build_loader(_dataset(motion_dataset), 4, train=True, num_workers=workers, seed=5)
    optimizer = build_optimizer(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.75)
    total = epochs * (len(loader) // 2)
    scheduler = build_lr_scheduler(optimizer, total, warmup_steps=2, min_lr=1e-5, warmup_lr=1e-6)
    backend = NativeBackend(model, optimizer, CPU, accumulation=2)
    args = type("A", (), {"mixup": 0.8, "cutmix": 1.0, "cutmix_minmax": None, "mixup_prob": 1.0})
    args.mixup_switch_prob, args.mixup_mode, args.smoothing, args.nb_classes = 0.5, "batch", 0.1, 4
    from timm.loss import SoftTargetCrossEntropy

    step = classification_step_fn(SoftTargetCrossEntropy(), VideoMixup(args) if mixup else None)
    cfg = TrainerConfig(epochs=epochs, output_dir=str(output_dir), accumulation=2, resume=resume, log_every=3)
    trainer = Trainer(backend, loader, step, cfg, CPU, lr_scheduler=scheduler)
    if preempt_after is not None:
        original = backend.backward_step
        calls = {"n": 0}

        def backward_step(loss, update):
            norm = original(loss, update)
            calls["n"] += int(update)
            if calls["n"] == preempt_after:
                trainer.preemption.request()
            return norm

        backend.backward_step = backward_step
    trainer.fit()
    return model, trainer


def test_resume_mid_epoch_gives_the_same_weights(motion_dataset, tmp_path):
    full, _ = _run(motion_dataset, tmp_path / "full")
    # 24 clips / batch 4 / accumulation 2 = 3 updates per epoch: stop in the middle of epoch 1.
    _, stopped = _run(motion_dataset, tmp_path / "cut", preempt_after=4)
    assert stopped.state.epoch == 1 and stopped.state.micro_step == 2
    assert (tmp_path / "cut" / "checkpoint-preempt.pth").is_file()
    resumed, trainer = _run(motion_dataset, tmp_path / "cut", resume="auto")
    assert trainer.state.update == 6
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"


def test_resume_with_worker_processes_matches_in_process_loading(motion_dataset, tmp_path):
    in_process, _ = _run(motion_dataset, tmp_path / "a", epochs=1, mixup=False)
    workers, _ = _run(motion_dataset, tmp_path / "b", epochs=1, mixup=False, workers=2)
    for a, b in zip(in_process.parameters(), workers.parameters()):
        assert torch.equal(a, b)


def test_gradient_accumulation_matches_one_large_batch():
    torch.manual_seed(0)
    data = torch.randn(8, 3, 4, 32, 32)
    target = torch.randint(0, 4, (8,))
    results = []
    for micro, accumulation in ((8, 1), (4, 2), (2, 4)):
        torch.manual_seed(1)
        model = TinyVideoViT(num_classes=4, img_size=32, num_frames=4)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        backend = NativeBackend(model, optimizer, CPU, accumulation=accumulation)
        for i in range(accumulation):
            x, y = data[i * micro : (i + 1) * micro], target[i * micro : (i + 1) * micro]
            loss = torch.nn.functional.cross_entropy(model(x), y)
            backend.backward_step(loss, update=i == accumulation - 1)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[0], results[2], rtol=1e-5, atol=1e-6)


def test_layer_decay_follows_the_original_formula():
    # The original gives block i the scale decay ** (depth - i), the embeddings decay ** (depth + 1)
    # and the head 1.
    depth, decay = 3, 0.5
    model = TinyVideoViT(depth=depth)
    optimizer = build_optimizer(model, lr=1.0, weight_decay=0.05, layer_decay=decay)
    scales = layer_lr_scales(optimizer, model)
    assert scales["pos_embed"] == pytest.approx(decay ** (depth + 1))
    assert scales["patch_embed.weight"] == pytest.approx(decay ** (depth + 1))
    for i in range(depth):
        assert scales[f"blocks.{i}.attn.qkv.weight"] == pytest.approx(decay ** (depth - i))
    assert scales["head.weight"] == pytest.approx(1.0)
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert decay_of[id(named["head.weight"])] == 0.05
    for name in ("head.bias", "pos_embed", "cls_token", "norm.weight"):
        assert decay_of[id(named[name])] == 0.0, name


def test_lr_schedule_warms_up_linearly_then_follows_the_cosine():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = build_lr_scheduler(optimizer, total_steps=12, warmup_steps=2, min_lr=0.1, warmup_lr=0.0)
    lrs = []
    for step in range(13):
        scheduler.step_update(step)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.0)
    assert lrs[1] == pytest.approx(0.5)
    for step in range(2, 13):
        expected = 0.1 + 0.5 * (1.0 - 0.1) * (1 + math.cos(math.pi * (step - 2) / 10))
        assert lrs[step] == pytest.approx(expected), step
    assert lrs[12] == pytest.approx(0.1)


def test_weight_decay_schedule_moves_only_decayed_groups():
    w, b = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.AdamW(
        [{"params": [w], "weight_decay": 0.05}, {"params": [b], "weight_decay": 0.0}]
    )
    schedule = WeightDecaySchedule(optimizer, 0.04, 0.4, total_steps=10)
    schedule.step_update(5)
    assert optimizer.param_groups[0]["weight_decay"] == pytest.approx(0.22)
    assert optimizer.param_groups[1]["weight_decay"] == 0.0
    schedule.step_update(10)
    assert optimizer.param_groups[0]["weight_decay"] == pytest.approx(0.4)


def test_video_mixup_uses_one_box_for_all_frames():
    args = type("A", (), {"mixup": 0.0, "cutmix": 1.0, "cutmix_minmax": None, "mixup_prob": 1.0})
    args.mixup_switch_prob, args.mixup_mode, args.smoothing, args.nb_classes = 0.5, "batch", 0.0, 3
    mixup = VideoMixup(args)
    video = torch.zeros(2, 3, 4, 16, 16)
    video[1] = 1.0
    np.random.seed(0)  # a draw whose box is neither empty nor the whole frame
    mixed, soft = mixup(video, torch.tensor([0, 2]))
    region = mixed[0] == 1.0  # the part of clip 0 pasted from clip 1
    assert region.any() and not region.all()
    for t in range(1, 4):
        assert torch.equal(region[:, t], region[:, 0])
    pasted = region[0, 0].float().mean()
    assert soft[0, 2] == pytest.approx(pasted.item(), abs=1e-6)
    assert soft[0].sum() == pytest.approx(1.0)


def test_trainer_counts_unreadable_videos_per_epoch(motion_dataset, tmp_path):
    root = motion_dataset["root"]
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    lines = (root / "train.csv").read_text().splitlines()[:7] + [f"{bad} 1"]
    listing = tmp_path / "train.csv"
    listing.write_text("\n".join(lines) + "\n")
    records = read_video_list(listing, prefix=str(root), num_classes=4)
    tf = EvalTransform(32, 32, 1)
    dataset = VideoClassificationDataset(records, "train", ClipSampling("sparse", 4), lambda f: tf(f), seed=1)
    loader = build_loader(dataset, 8, train=True, num_workers=0)
    model = TinyVideoViT(num_classes=4)
    backend = NativeBackend(model, torch.optim.SGD(model.parameters(), lr=0.01), CPU)
    step = classification_step_fn(torch.nn.CrossEntropyLoss(), None)
    trainer = Trainer(backend, loader, step, TrainerConfig(epochs=2), CPU)
    history = trainer.fit()
    assert [h["skipped_videos"] for h in history] == [1, 1]
