"""run_finetuning.py / run_linear_probing.py on real video files, and pretrained-weight loading."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from internvideo2.engine.finetune import (
    build_model,
    finetuning_parser,
    freeze_for_probing,
    load_pretrained,
    probing_parser,
)
from ivtools.testing import run_script

SINGLE = Path(__file__).resolve().parents[1] / "single_modality"
TINY = {
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "attn_pool_num_heads": 2,
    "clip_embed_dim": 16,
    "mlp_ratio": 2.0,
}
FLAGS = ["--no-use_flash_attn", "--no-use_fused_rmsnorm", "--no-use_fused_mlp"]


def entry_point(name: str):
    spec = importlib.util.spec_from_file_location(name, SINGLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lists(motion_dataset, tmp_path) -> Path:
    data = tmp_path / "lists"
    data.mkdir()
    shutil.copy(motion_dataset["train"], data / "train.csv")
    shutil.copy(motion_dataset["val"], data / "val.csv")
    shutil.copy(motion_dataset["val"], data / "test.csv")
    return data


def cli(data: Path, root: Path, out: Path, epochs: int, extra=()) -> list[str]:
    return [
        "--model", "internvideo2_small_patch14_224", "--model_kwargs", json.dumps(TINY), *FLAGS,
        "--data_path", str(data), "--prefix", str(root), "--output_dir", str(out),
        "--nb_classes", "4", "--num_frames", "4", "--input_size", "28", "--short_side_size", "28",
        "--batch_size", "4", "--num_sample", "1", "--epochs", str(epochs), "--max_updates_per_epoch", "2",
        "--num_workers", "0", "--warmup_epochs", "0", "--aa", "rand-m7-n4-mstd0.5-inc1",
        "--test_num_segment", "2", "--test_num_crop", "3", "--data_set", "Kinetics_sparse", *extra,
    ]  # fmt: skip


def test_finetune_resume_and_multiview_test(lists, motion_dataset, tmp_path):
    out = tmp_path / "run"
    first = entry_point("run_finetuning").main(cli(lists, motion_dataset["root"], out, 1))
    assert first["test_videos"] == 12 and first["test_unreadable_views"] == 0
    assert 0.0 <= first["test_top1"] <= first["test_top5"] <= 100.0
    saved = torch.load(out / "checkpoint-0.pth", map_location="cpu", weights_only=False)
    assert saved["epoch"] == 1 and saved["update"] == 2
    # Two more epochs continue from the saved one (auto resume), not from scratch.
    second = entry_point("run_finetuning").main(cli(lists, motion_dataset["root"], out, 2, ["--model_ema"]))
    assert [h["epoch"] for h in second["history"]] == [0, 1]
    assert second["history"][0] == first["history"][0]
    assert torch.load(out / "checkpoint-1.pth", map_location="cpu", weights_only=False)["update"] == 4


def test_label_outside_class_range_is_reported(lists, motion_dataset, tmp_path):
    argv = cli(lists, motion_dataset["root"], tmp_path / "x", 1)
    argv[argv.index("--nb_classes") + 1] = "3"
    with pytest.raises(ValueError, match=r"train.csv:\d+: label 3 outside the class range"):
        entry_point("run_finetuning").main(argv)


def test_linear_probing_trains_only_the_head(lists, motion_dataset, tmp_path):
    out = tmp_path / "probe"
    result = entry_point("run_linear_probing").main(cli(lists, motion_dataset["root"], out, 1))
    assert result["test_videos"] == 12
    saved = torch.load(out / "checkpoint-0.pth", map_location="cpu", weights_only=False)
    # The optimizer holds only fc_norm and head (weight + bias each), and Adam moved them.
    optimized = [p for group in saved["optimizer"]["param_groups"] for p in group["params"]]
    assert len(optimized) == 4
    assert all(s["step"] == 2 for s in saved["optimizer"]["state"].values())


def test_freeze_for_probing_names():
    args = finetuning_parser().parse_args(["--model", "internvideo2_ap_small_patch14_224", "--nb_classes", "4",
                                            "--num_frames", "2", "--input_size", "28", "--model_kwargs",
                                            json.dumps(TINY), *FLAGS])  # fmt: skip
    model = build_model(args)
    linear = freeze_for_probing(model)
    assert linear and all(
        not n.startswith(("blocks", "clip_projector", "patch_embed", "pos_embed")) for n in linear
    )
    attentive = freeze_for_probing(model, open_block_num=1, open_clip_projector=True)
    assert any(n.startswith("clip_projector.") for n in attentive)
    assert any(n.startswith("blocks.1.") for n in attentive) and not any(
        n.startswith("blocks.0.") for n in attentive
    )
    with pytest.raises(ValueError, match="open_block_num"):
        freeze_for_probing(model, open_block_num=3)


def test_load_released_layout_with_k710_head_and_8_frame_pos_embed(tmp_path):
    def args_for(frames: int, classes: int, extra=()) -> argparse.Namespace:
        return finetuning_parser().parse_args([
            "--nb_classes", str(classes), "--num_frames", str(frames), "--input_size", "28",
            "--model", "internvideo2_small_patch14_224", "--model_kwargs", json.dumps(TINY), *FLAGS, *extra,
        ])  # fmt: skip

    source = build_model(args_for(8, 710))
    released = {f"encoder.{k}": v for k, v in source.state_dict().items()}  # a pretraining-style prefix
    ckpt = tmp_path / "released.pth"
    torch.save({"module": released, "epoch": 3}, ckpt)
    names = [f"class {i}" for i in range(710)]
    (tmp_path / "k710.txt").write_text("\n".join(names))
    (tmp_path / "target.txt").write_text("class 9\nclass 700\nClass_2\nclass 0\n")
    args = args_for(
        4,
        4,
        [
            "--k710_label_list",
            str(tmp_path / "k710.txt"),
            "--target_label_list",
            str(tmp_path / "target.txt"),
        ],
    )
    model = build_model(args)
    report = load_pretrained(model, str(ckpt), args)
    assert report.reinitialised == [] and report.dropped == []
    assert report.resized == ["pos_embed"] and "K710 head mapped to 4 classes" in report.notes
    sd, src = model.state_dict(), source.state_dict()
    assert torch.equal(sd["head.bias"], src["head.bias"][[9, 700, 2, 0]])
    # Linear resampling 8 -> 4 frames (align_corners=False) averages frames 2j and 2j + 1.
    old = src["pos_embed"][0, 1:].view(8, 4, -1)
    new = sd["pos_embed"][0, 1:].view(4, 4, -1)
    assert torch.allclose(new, (old[0::2] + old[1::2]) / 2, atol=1e-6)
    assert torch.equal(sd["pos_embed"][0, 0], src["pos_embed"][0, 0])
    assert torch.equal(sd["blocks.1.attn.qkv.weight"], src["blocks.1.attn.qkv.weight"])


def test_wrong_checkpoint_is_a_clear_error(tmp_path):
    args = finetuning_parser().parse_args(["--nb_classes", "4", "--num_frames", "2", "--input_size", "28",
                                           "--model", "internvideo2_small_patch14_224",
                                           "--model_kwargs", json.dumps(TINY), *FLAGS])  # fmt: skip
    model = build_model(args)
    torch.save({"model": {"text_encoder.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no tensor matches"):
        load_pretrained(model, str(tmp_path / "other.pth"), args)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_pretrained(model, str(tmp_path / "missing.pth"), args)
    args.model = "internvideo2_tiny_nonexistent"
    with pytest.raises(ValueError, match="unknown --model"):
        build_model(args)


def test_model_prefix_finetune_extra_delete_head_and_spread_inflation(tmp_path):
    def args_for(frames: int, tubelet: int, extra=()) -> argparse.Namespace:
        return probing_parser().parse_args([
            "--nb_classes", "3", "--num_frames", str(frames), "--input_size", "28", "--tubelet_size",
            str(tubelet), "--model", "internvideo2_small_patch14_224", "--model_kwargs", json.dumps(TINY),
            *FLAGS, *extra,
        ])  # fmt: skip

    source = build_model(args_for(2, 1))
    ckpt, extra = tmp_path / "student.pth", tmp_path / "stage2.pth"
    student = {f"student.{k}": v for k, v in source.state_dict().items()}
    torch.save({"model": {**student, "teacher.proj.weight": torch.zeros(2)}}, ckpt)
    qkv = torch.randn_like(source.blocks[0].attn.qkv.weight)
    torch.save(
        {"module": {"vision_encoder.blocks.0.attn.qkv.weight": qkv, "text_encoder.w": torch.zeros(1)}}, extra
    )
    args = args_for(4, 2, ["--model_prefix", "student.", "--finetune_extra", str(extra), "--delete_head"])
    model = build_model(args)
    head = model.head.weight.clone()
    report = load_pretrained(model, str(ckpt), args)
    assert set(report.reinitialised) == {"head.weight", "head.bias"} and report.dropped == []
    assert torch.equal(model.head.weight, head)
    assert torch.equal(model.blocks[0].attn.qkv.weight, qkv)  # --finetune_extra wins
    assert torch.equal(model.blocks[1].attn.qkv.weight, source.blocks[1].attn.qkv.weight)
    # Without --center_init a single-frame kernel is spread evenly: each of 2 frames gets half.
    kernel, single = model.patch_embed.proj.weight, source.patch_embed.proj.weight[:, :, 0]
    assert (
        kernel.shape[2] == 2
        and torch.allclose(kernel[:, :, 0], single / 2)
        and torch.equal(kernel[:, :, 0], kernel[:, :, 1])
    )
    with pytest.raises(KeyError, match="model_prefix 'nothing.'"):
        load_pretrained(model, str(ckpt), args_for(4, 2, ["--model_prefix", "nothing."]))


def finetune_in_subprocess(argv: list[str]) -> str:
    """DeepSpeed keeps process-wide state (accelerator, process group): each run gets its own process."""
    return run_script(
        [sys.executable, str(SINGLE / "run_finetuning.py"), *argv], env={"DS_ACCELERATOR": "cpu"}
    )


# ZeRO-2 + bf16 costs another ~25 s of subprocess runs: slow.
@pytest.mark.parametrize(
    "zero",
    [["--zero_stage", "1"], pytest.param(["--zero_stage", "2", "--bf16"], marks=pytest.mark.slow)],
    ids=["zero1", "zero2-bf16"],
)
def test_finetune_deepspeed_zero_trains_saves_and_resumes(lists, motion_dataset, tmp_path, zero):
    pytest.importorskip("deepspeed")
    from ivtools.checkpoint import consolidate_zero_checkpoint

    out = tmp_path / "ds"
    argv = cli(lists, motion_dataset["root"], out, 1, ["--enable_deepspeed", *zero, "--save_ckpt_freq", "1"])
    finetune_in_subprocess(argv)
    prefix = "bf16_" if "--bf16" in zero else ""  # DeepSpeed names bf16 optimizer shards apart
    assert (out / "checkpoint-0" / f"{prefix}zero_pp_rank_0_mp_rank_00_optim_states.pt").is_file()
    first = consolidate_zero_checkpoint(out / "checkpoint-0")
    stdout = finetune_in_subprocess([*argv, "--epochs", "2"])
    assert f"resumed from {out / 'checkpoint-0'}" in stdout
    second = consolidate_zero_checkpoint(out / "checkpoint-1")
    epochs = [
        r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["kind"] == "epoch"
    ]
    assert [r["epoch"] for r in epochs] == [0, 1]  # epoch 0 is not trained again
    for key in ("blocks.0.attn.qkv.weight", "head.weight"):
        assert first[key].dtype == torch.float32  # ZeRO keeps fp32 master weights even under bf16
        assert not torch.equal(first[key], second[key]), key
