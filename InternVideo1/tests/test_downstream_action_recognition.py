"""Action recognition entry: family dispatch and a two-iteration fine-tune + test on real files."""

import math
from pathlib import Path

import pytest
import timm

from internvideo1.downstream.action_recognition import (
    build_action_recognition_parser,
    parse_action_recognition_args,
    run_action_recognition,
)


def test_family_dispatch_parses_each_family_arguments():
    args = parse_action_recognition_args(["--family", "uniformerv2", "--nb_classes", "4"])
    assert (args.family, args.model, args.n_layers, args.test_num_crop) == (
        "uniformerv2",
        "uniformerv2_b16",
        4,
        3,
    )
    args = parse_action_recognition_args(["--nb_classes", "4", "--tubelet_size", "1"])
    assert (args.family, args.tubelet_size) == ("videomae", 1)
    with pytest.raises(SystemExit):
        parse_action_recognition_args(["--family", "uniformerv2", "--tubelet_size", "1"])
    with pytest.raises(ValueError, match="unknown encoder family"):
        build_action_recognition_parser("resnet")


def test_videomae_finetune_two_iterations(tmp_path, motion_dataset, monkeypatch):
    create = timm.create_model
    # The full ViT-S would be slow on CPU: shrink it (a depth-1, 32-wide VideoMAE ViT) where it is built.
    monkeypatch.setattr(
        timm,
        "create_model",
        lambda name, **kw: create(name, **{**kw, "embed_dim": 32, "depth": 1, "num_heads": 2}),
    )
    lists = tmp_path / "lists"
    lists.mkdir()
    for split, source in (("train", "train"), ("val", "val"), ("test", "val")):
        (lists / f"{split}.csv").write_text(Path(motion_dataset[source]).read_text())
    args = parse_action_recognition_args(
        ["--family", "videomae", "--model", "vit_small_patch16_224", "--data_path", str(lists), "--prefix",
         str(motion_dataset["root"]), "--nb_classes", "4", "--num_frames", "4", "--input_size", "32",
         "--short_side_size", "32", "--batch_size", "2", "--epochs", "1", "--max_updates_per_epoch", "2",
         "--num_workers", "0", "--test_num_segment", "1", "--test_num_crop", "1", "--num_sample", "1", "--aa", "none",
         "--reprob", "0", "--mixup", "0", "--cutmix", "0", "--device", "cpu", "--disable_eval_during_finetuning"]
    )  # fmt: skip
    results = run_action_recognition(args)
    assert math.isfinite(results["history"][0]["train_loss"])
    # 12 test videos, one view each: top-1 is a multiple of 100/12, top-5 covers all 4 classes.
    assert results["test_top1"] * 12 / 100 == pytest.approx(round(results["test_top1"] * 12 / 100))
    assert results["test_top5"] == 100.0
