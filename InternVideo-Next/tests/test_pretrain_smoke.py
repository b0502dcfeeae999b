"""Two-iteration stage-1 and stage-2 runs on real video files, checkpoint saved and resumed."""

import argparse
import json

import torch

from internvideo_next.configs import add_pretrain_args
from internvideo_next.engine import run_stage1, run_stage2


def _args(stage, data, out, tiny, epochs, extra=()):
    trunk = {k: v for k, v in tiny["trunk"].items() if k not in ("num_frames", "img_size")}
    argv = [
        "--data_path", str(data), "--prefix", str(data.parent), "--output_dir", str(out),
        "--num_frames", "4", "--input_size", "28", "--batch_size", "2", "--epochs", str(epochs),
        "--max_updates_per_epoch", "2", "--save_ckpt_freq", "1", "--num_workers", "0",
        "--warmup_epochs", "0", "--device", "cpu", "--lr", "1e-3",
        "--model_kwargs", json.dumps(trunk), "--bert_kwargs", json.dumps(tiny["bert"]),
    ]  # fmt: skip
    if stage == 1:
        argv += [
            "--teacher_kwargs", json.dumps(tiny["teacher"]), "--clip_teacher_embed_dim", "24",
            "--clip_teacher_final_dim", "24", "--clip_return_layer", "2", "--diffloss_d", "2", "--diffloss_w", "32",
        ]  # fmt: skip
    return add_pretrain_args(argparse.ArgumentParser(), stage).parse_args(argv + list(extra))


def test_stage1_then_stage2_train_save_and_resume(motion_dataset, tmp_path, tiny):
    data = motion_dataset["train"]
    s1 = tmp_path / "s1"
    history = run_stage1(_args(1, data, s1, tiny, epochs=1, extra=["--mask_type", "attention"]))
    assert len(history) == 1 and torch.isfinite(torch.tensor(history[0]["train_loss"]))
    first = s1 / "checkpoint-0.pth"
    assert first.is_file()
    saved = torch.load(first, map_location="cpu", weights_only=False)
    assert saved["update"] == 2 and "diffloss.net.input_proj.weight" in saved["model"]

    # a second run with one more epoch resumes from the checkpoint instead of starting over
    history = run_stage1(_args(1, data, s1, tiny, epochs=2, extra=["--mask_type", "tube"]))
    assert [h["epoch"] for h in history] == [0, 1]
    assert torch.load(s1 / "checkpoint-1.pth", map_location="cpu", weights_only=False)["update"] == 4

    s2 = tmp_path / "s2"
    args = _args(2, data, s2, tiny, epochs=1, extra=["--stage1_checkpoint", str(s1 / "checkpoint-1.pth")])
    history = run_stage2(args)
    assert torch.isfinite(torch.tensor(history[0]["train_loss"]))
    state = torch.load(s2 / "checkpoint-0.pth", map_location="cpu", weights_only=False)
    stage1 = torch.load(s1 / "checkpoint-1.pth", map_location="cpu", weights_only=False)["model"]
    # momentum 1.0: the teacher is exactly the stage-1 trunk, while the student moved on
    assert torch.equal(state["model_ema"]["blocks.0.attn.qkv.weight"], stage1["blocks.0.attn.qkv.weight"])
    assert not torch.equal(state["model"]["blocks.0.attn.qkv.weight"], stage1["blocks.0.attn.qkv.weight"])


def test_stage1_multi_scale_schedule_runs(motion_dataset, tmp_path, tiny):
    extra = ["--multi_scale", "--f1", "2", "--f2", "4", "--r1", "14", "--r2", "28", "--rs", "14",
             "--base_token_num", "8", "--min_token_limit", "4", "--max_token_limit", "16", "--mask_type", "random",
             "--mask_ratio", "0.5"]  # fmt: skip
    history = run_stage1(_args(1, motion_dataset["train"], tmp_path, tiny, epochs=1, extra=extra))
    assert torch.isfinite(torch.tensor(history[0]["train_loss"]))
