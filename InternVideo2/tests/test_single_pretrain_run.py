"""Smoke runs of run_pretraining.py and run_distill.py: tiny registered students and teachers, real videos."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SINGLE = Path(__file__).resolve().parents[1] / "single_modality"
FLAGS = ["--no-use_flash_attn", "--no-use_fused_rmsnorm", "--no-use_fused_mlp"]
TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0}
OFF = {"use_flash_attn": False, "use_fused_rmsnorm": False, "use_fused_mlp": False}


def entry_point(name: str):
    spec = importlib.util.spec_from_file_location(name, SINGLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pretrain_list(motion_dataset, tmp_path: Path) -> Path:
    """The six-column pretraining list, with one windowed row, built from the motion videos."""
    rows = []
    for i, line in enumerate(motion_dataset["train"].read_text().split("\n")[:8]):
        rel = line.split()[0]
        window = "1.0 0.0 0.75" if i == 0 else "-1 -1 -1"
        rows.append(f"{'ssv2' if i % 2 else 'k400'} {rel} {window} 0")
    path = tmp_path / "pretrain.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def common_args(data: Path, root: Path, out: Path, mask_type: str) -> list[str]:
    return [
        "--data_path", str(data), "--prefix", str(root), "--output_dir", str(out),
        "--mask_type", mask_type, "--mask_ratio", "0.5",
        "--input_size", "28", "--clip_input_resolution", "28",
        "--batch_size", "2", "--epochs", "1", "--max_updates_per_epoch", "2",
        "--num_workers", "0", "--warmup_epochs", "0", "--lr", "1e-3", "--flip",
        "--clip_return_layer", "2", "--clip_teacher_embed_dim", "48", "--clip_teacher_final_dim", "24",
        "--teacher_random_init", *FLAGS,
    ]  # fmt: skip


@pytest.mark.parametrize("mask_type", ["attention", "tube"])
def test_pretraining_smoke_writes_and_reloads_checkpoint(motion_dataset, tmp_path, mask_type):
    data = pretrain_list(motion_dataset, tmp_path)
    out = tmp_path / "out"
    clip_teacher = {
        **TINY,
        "embed_dim": 48,
        "num_heads": 2,
        "attn_pool_num_heads": 2,
        "clip_embed_dim": 24,
        **OFF,
    }
    mae_teacher = {**TINY, "embed_dim": 40, "all_frames": 4}
    student = {**TINY, "attn_pool_num_heads": 2, "clip_embed_dim": 24}
    argv = common_args(data, motion_dataset["root"], out, mask_type) + [
        "--num_frames", "4", "--sampling_rate", "2",
        "--mae_teacher_embed_dim", "40", "--mae_return_layer", "2", "--mae_input_resolution", "28",
        "--model_kwargs", json.dumps(student),
        "--clip_teacher_kwargs", json.dumps(clip_teacher),
        "--mae_teacher_kwargs", json.dumps(mae_teacher),
    ]  # fmt: skip
    history = entry_point("run_pretraining").main(argv)
    assert len(history) == 1
    record = history[0]
    # Three unit-vector alignment terms, each in [0, 4]; with random teachers none is ~0.
    assert 0.0 < record["train_loss"] < 12.0
    saved = torch.load(out / "checkpoint-0.pth", map_location="cpu", weights_only=False)
    assert saved["epoch"] == 1 and saved["update"] == 2
    assert any(k.startswith("clip_decoder") or "decoder" in k for k in saved["model"])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if r["kind"] == "train"]
    assert {"loss_clip_middle", "loss_clip_final", "loss_mae"} <= set(steps[0])
    # A second run with --resume auto finds the finished run and trains nothing more.
    again = entry_point("run_pretraining").main(argv)
    assert again == history


def test_distillation_smoke(motion_dataset, tmp_path):
    data = pretrain_list(motion_dataset, tmp_path)
    out = tmp_path / "out"
    teacher = {**TINY, "embed_dim": 48, "attn_pool_num_heads": 2, "clip_embed_dim": 24, **OFF}
    student = {**TINY, "attn_pool_num_heads": 2, "clip_embed_dim": 24}
    argv = common_args(data, motion_dataset["root"], out, "attention") + [
        "--num_frames", "2", "--num_segments", "2",
        "--clip_student_decoder", "MLP_Decoder",
        "--model", "distill_internvideo2_small_patch14_224",
        "--model_kwargs", json.dumps(student),
        "--clip_teacher_kwargs", json.dumps(teacher),
    ]  # fmt: skip
    history = entry_point("run_distill").main(argv)
    assert 0.0 < history[0]["train_loss"] < 8.0
    assert (out / "checkpoint-0.pth").is_file()


def test_missing_teacher_weights_is_a_clear_error(motion_dataset, tmp_path, monkeypatch):
    monkeypatch.delenv("INTERNVIDEO2_MODEL_PATH", raising=False)
    data = pretrain_list(motion_dataset, tmp_path)
    argv = [
        a for a in common_args(data, motion_dataset["root"], tmp_path, "tube") if a != "--teacher_random_init"
    ]
    argv += [
        "--model",
        "distill_internvideo2_small_patch14_224",
        "--clip_teacher_kwargs",
        json.dumps({**TINY, **OFF}),
    ]
    argv += ["--model_kwargs", json.dumps(TINY), "--num_frames", "2"]
    with pytest.raises(FileNotFoundError, match="teacher_internvideo2_stage2_1B"):
        entry_point("run_distill").main(argv)


def test_compile_flag_compiles_the_student_blocks(motion_dataset, tmp_path, monkeypatch):
    from ivtools.train import compile as compile_module
    from ivtools.train.compile import compile_blocks

    compiled = []

    def eager_compile(model):  # dynamo tracing without inductor codegen: seconds, not minutes, on CPU
        compiled.append(model)
        return compile_blocks(model, backend="eager")

    monkeypatch.setattr(compile_module, "compile_blocks", eager_compile)
    data = pretrain_list(motion_dataset, tmp_path)
    teacher = {**TINY, "embed_dim": 48, "attn_pool_num_heads": 2, "clip_embed_dim": 24, **OFF}
    argv = common_args(data, motion_dataset["root"], tmp_path / "out", "tube") + [
        "--num_frames", "2", "--model", "distill_internvideo2_small_patch14_224", "--compile",
        "--model_kwargs", json.dumps({**TINY, "attn_pool_num_heads": 2, "clip_embed_dim": 24}),
        "--clip_teacher_kwargs", json.dumps(teacher),
    ]  # fmt: skip
    history = entry_point("run_distill").main(argv)
    assert len(compiled) == 1 and type(compiled[0]).__name__ == "DistillInternVideo2"
    assert all(block._compiled_call_impl is not None for block in compiled[0].blocks)
    assert 0.0 < history[0]["train_loss"] < 8.0
