"""run_finetuning.py / run_attentive_probing.py end to end on real video files (ivtools pipeline),
and stage-1/stage-2 pretraining checkpoints as their ``--finetune`` initialisation."""

from __future__ import annotations

import argparse
import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest
import timm
import torch

from internvideo_next.engine.classification import add_model_args, build_model, load_pretrained
from internvideo_next.models import build_semantic_decoder
from ivtools.train.classification import add_classification_args

ROOT = Path(__file__).resolve().parents[1]
ENCODER = {"embed_dim": 32, "depth": 2, "num_heads": 2, "clip_embed_dim": 16, "attn_pool_num_heads": 2}


@pytest.fixture
def lists(motion_dataset, tmp_path) -> Path:
    data = tmp_path / "lists"
    data.mkdir()
    shutil.copy(motion_dataset["train"], data / "train.csv")
    shutil.copy(motion_dataset["val"], data / "val.csv")  # no test.csv: the pipeline tests on val
    return data


def cli(data: Path, root: Path, out: Path, epochs: int, extra=()) -> list[str]:
    return [
        "--model_kwargs", json.dumps(ENCODER), "--probe_num_heads", "2",
        "--data_path", str(data), "--prefix", str(root), "--output_dir", str(out), "--device", "cpu",
        "--nb_classes", "4", "--num_frames", "4", "--input_size", "28", "--short_side_size", "28",
        "--batch_size", "4", "--num_sample", "1", "--epochs", str(epochs), "--max_updates_per_epoch", "2",
        "--num_workers", "0", "--warmup_epochs", "0", "--save_ckpt_freq", "1", "--steps_per_print", "1",
        "--test_num_segment", "2", "--test_num_crop", "3", "--data_set", "Kinetics_sparse", *extra,
    ]  # fmt: skip


def run_script(name: str, argv: list[str], monkeypatch) -> dict:
    monkeypatch.setattr(sys, "argv", [name, *argv])
    runpy.run_path(str(ROOT / name), run_name="__main__")
    return json.loads((Path(argv[argv.index("--output_dir") + 1]) / "test_results.json").read_text())


def tiny_pretrained(stage: int, tiny) -> torch.nn.Module:
    bert = build_semantic_decoder(keep_layers=5, **tiny["bert"])
    heads = tiny["stage1"] if stage == 1 else {}
    trunk = {**ENCODER, "num_frames": 4, "img_size": 28}
    return timm.create_model(f"internvideo_next_stage{stage}_base", **trunk, **heads, bert_decoder=bert)


def test_finetune_multiview_test_and_resume(lists, motion_dataset, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ft"
    first = run_script("run_finetuning.py", cli(lists, motion_dataset["root"], out, 1), monkeypatch)
    # 4 classes x 3 val videos, each scored over 2 clips x 3 crops
    assert first["test_videos"] == 12 and first["test_unreadable_views"] == 0
    assert 0.0 <= first["test_top1"] <= first["test_top5"] <= 100.0
    saved = torch.load(out / "checkpoint-0.pth", map_location="cpu", weights_only=False)
    assert saved["epoch"] == 1 and saved["update"] == 2
    assert saved["model"]["encoder.blocks.0.attn.qkv.weight"].shape == (96, 32)
    # layer decay 0.75 over depth 2: stem 0.75^3, blocks 0.75^2 and 0.75, heads 1
    scales = sorted({g["lr_scale"] for g in saved["optimizer"]["param_groups"]})
    assert scales == pytest.approx([0.75**3, 0.75**2, 0.75, 1.0])
    capsys.readouterr()
    # one more epoch continues from the saved one instead of starting over
    run_script("run_finetuning.py", cli(lists, motion_dataset["root"], out, 2), monkeypatch)
    assert f"resumed from {out / 'checkpoint-0.pth'} at epoch 1" in capsys.readouterr().out
    assert torch.load(out / "checkpoint-1.pth", map_location="cpu", weights_only=False)["update"] == 4


def test_attentive_probe_from_stage1_checkpoint_keeps_encoder_frozen(
    lists, motion_dataset, tmp_path, monkeypatch, capsys, tiny
):
    stage1 = tiny_pretrained(1, tiny).state_dict()
    torch.save({"model": stage1, "epoch": 3}, tmp_path / "stage1.pth")
    out = tmp_path / "probe"
    extra = ["--finetune", str(tmp_path / "stage1.pth")]
    result = run_script(
        "run_attentive_probing.py", cli(lists, motion_dataset["root"], out, 1, extra), monkeypatch
    )
    assert result["test_videos"] == 12
    report = capsys.readouterr().out
    assert "missing in checkpoint" not in report
    for head in ("clip_decoder", "final_clip_decoder", "diffloss", "bert_decoder", "clip_pos_embed"):
        assert f"{head} (" in report, head
    saved = torch.load(out / "checkpoint-0.pth", map_location="cpu", weights_only=False)
    encoder = {k.removeprefix("encoder."): v for k, v in saved["model"].items() if k.startswith("encoder.")}
    assert set(encoder) < set(stage1)
    # two updates later the frozen encoder still holds exactly the stage-1 trunk
    assert all(torch.equal(v, stage1[k]) for k, v in encoder.items())
    # the optimizer holds only the probe, fc_norm and head tensors, and Adam moved each twice
    heads = [k for k in saved["model"] if not k.startswith("encoder.")]
    optimised = [p for group in saved["optimizer"]["param_groups"] for p in group["params"]]
    assert len(optimised) == len(heads) and all(k.startswith(("probe.", "fc_norm.", "head.")) for k in heads)
    assert all(s["step"] == 2 for s in saved["optimizer"]["state"].values())


def test_stage2_checkpoint_reports_heads_and_missing_trunk_keys(tmp_path, tiny):
    stage2 = tiny_pretrained(2, tiny).state_dict()
    del stage2["blocks.1.mlp.fc2.weight"]
    torch.save({"model": stage2, "model_ema": {}}, tmp_path / "stage2.pth")
    parser = add_model_args(add_classification_args(argparse.ArgumentParser()), "finetune")
    args = parser.parse_args(["--model_kwargs", json.dumps(ENCODER), "--nb_classes", "3",
                              "--num_frames", "4", "--input_size", "28"])  # fmt: skip
    model = build_model(args)
    report = load_pretrained(model, str(tmp_path / "stage2.pth"), args)
    assert report.missing == ["blocks.1.mlp.fc2.weight"]
    heads = {k.split(".")[0] for k in report.unexpected}
    assert heads == {
        "clip_pos_embed", "diff_pos_embed", "to_bert_proj", "selfdist_decoder", "selfdist_normproj_decoder",
        "selfdist_proj_clip", "bert_mask_token", "bert_decoder",
    }  # fmt: skip
    assert not report.mismatched
    assert torch.equal(model.encoder.blocks[0].attn.qkv.weight, stage2["blocks.0.attn.qkv.weight"])
    assert torch.equal(
        model.encoder.clip_projector.cross_attn.q.weight, stage2["clip_projector.cross_attn.q.weight"]
    )


def test_checkpoint_without_encoder_weights_is_a_clear_error(tmp_path):
    torch.save({"model": {"text_encoder.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    parser = add_model_args(add_classification_args(argparse.ArgumentParser()), "finetune")
    args = parser.parse_args(
        ["--model_kwargs", json.dumps(ENCODER), "--num_frames", "4", "--input_size", "28"]
    )
    with pytest.raises(ValueError, match="other.pth: no tensor matches the encoder"):
        load_pretrained(build_model(args), str(tmp_path / "other.pth"), args)
