"""Stage 1 under DeepSpeed ZeRO-1 on CPU: two updates, a ZeRO checkpoint, and a resumed run."""

import json
import sys
from pathlib import Path

import pytest
import torch

from ivtools.testing import run_script

ROOT = Path(__file__).resolve().parents[1]


def _run_stage1(argv: list[str]) -> str:
    return run_script([sys.executable, str(ROOT / "main_stage1.py"), *argv])


def test_stage1_zero1_trains_saves_and_resumes(motion_dataset, tmp_path, tiny):
    pytest.importorskip("deepspeed")
    from ivtools.checkpoint import consolidate_zero_checkpoint

    trunk = {k: v for k, v in tiny["trunk"].items() if k not in ("num_frames", "img_size")}
    out = tmp_path / "ds"
    argv = [
        "--data_path", str(motion_dataset["train"]), "--prefix", str(motion_dataset["root"]),
        "--output_dir", str(out), "--num_frames", "4", "--input_size", "28", "--batch_size", "2",
        "--max_updates_per_epoch", "2", "--save_ckpt_freq", "1", "--num_workers", "0", "--warmup_epochs", "0",
        "--device", "cpu", "--lr", "1e-3", "--mask_type", "tube", "--enable_deepspeed", "--zero_stage", "1",
        "--model_kwargs", json.dumps(trunk), "--bert_kwargs", json.dumps(tiny["bert"]),
        "--teacher_kwargs", json.dumps(tiny["teacher"]), "--clip_teacher_embed_dim", "24",
        "--clip_teacher_final_dim", "24", "--clip_return_layer", "2", "--diffloss_d", "2", "--diffloss_w", "32",
    ]  # fmt: skip
    _run_stage1([*argv, "--epochs", "1"])
    assert (out / "checkpoint-0" / "zero_pp_rank_0_mp_rank_00_optim_states.pt").is_file()
    first = consolidate_zero_checkpoint(out / "checkpoint-0")
    stdout = _run_stage1([*argv, "--epochs", "2"])
    assert f"resumed from {out / 'checkpoint-0'}" in stdout
    second = consolidate_zero_checkpoint(out / "checkpoint-1")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log if r["kind"] == "epoch"] == [0, 1]  # epoch 0 is not trained again
    assert len([r for r in log if r["kind"] == "train"]) == 4
    for key in ("blocks.0.attn.qkv.weight", "diffloss.net.input_proj.weight", "clip_decoder.0.head.0.weight"):
        assert not torch.equal(first[key], second[key]), key
