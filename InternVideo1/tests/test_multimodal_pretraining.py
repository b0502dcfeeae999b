"""Multi-modality pretraining: encoder loading from released layouts, two iterations on real files."""

import argparse
import json
from pathlib import Path

import pytest
import timm
import torch

from internvideo1.pretrain.multimodal import (
    add_multimodal_args,
    build_multimodal_from_args,
    load_encoder_weights,
    run_multimodal_pretraining,
)
from ivtools.checkpoint import load_state_dict_file, save_state_dict_file, unwrap_state_dict
from ivtools.train.setup import seed_everything
from ivtools.video.synthetic import MOTION_CLASSES


def test_load_encoder_weights_from_released_layouts(tmp_path, tiny_internvideo_mm):
    model = timm.create_model("internvideo_mm_b16", vision={"input_resolution": 32, "num_frames": 4},
                              mae={"img_size": 32, "all_frames": 8}, text={"context_length": 16})  # fmt: skip
    # ViCLIP's released form: {"model": {"vision_encoder.*", "text_encoder.*", "temp"}}, 8 frames, 77 tokens.
    viclip = timm.create_model("viclip_b16", vision={"input_resolution": 32, "num_frames": 8, "width": 32,
                               "layers": 1, "heads": 2, "output_dim": 16}, text={"width": 32, "heads": 2, "layers": 1,
                               "embed_dim": 16})  # fmt: skip
    save_state_dict_file({"model": viclip.state_dict()}, tmp_path / "viclip.pth")
    mae = timm.create_model("pretrain_mae_base_patch16_224", img_size=32, encoder_embed_dim=24, encoder_depth=1,
                            encoder_num_heads=2, decoder_depth=1, decoder_embed_dim=16, decoder_num_heads=2)  # fmt: skip
    save_state_dict_file({"model": mae.state_dict()}, tmp_path / "videomae.pth")
    report = load_encoder_weights(model, tmp_path / "videomae.pth", tmp_path / "viclip.pth")
    assert report["clip_missing"] == []
    torch.testing.assert_close(model.clip_video.conv1.weight, viclip.vision_encoder.conv1.weight)
    torch.testing.assert_close(
        model.text_encoder.positional_embedding, viclip.text_encoder.positional_embedding[:16]
    )
    # 8 -> 4 frames: the temporal table is resampled, not copied.
    assert model.clip_video.temporal_positional_embedding.shape == (1, 4, 32)
    torch.testing.assert_close(
        model.mae_video.blocks[0].attn.qkv.weight, mae.encoder.blocks[0].attn.qkv.weight
    )


@pytest.mark.parametrize(
    "objectives", [[], ["--loss_names", "mlm=1", "vtm=1", "--mlm_prob", "0.3"]], ids=["default", "all"]
)
def test_two_iterations_on_real_videos(tmp_path, motion_dataset, tiny_internvideo_mm, make_bpe, objectives):
    root = Path(motion_dataset["root"])
    entries = {}
    for split in ("train", "val"):
        rows = [line.split() for line in Path(motion_dataset[split]).read_text().splitlines()]
        entries[split] = [
            {"video": str(root / p) if not Path(p).is_absolute() else p,
             "caption": [f"a square moving {MOTION_CLASSES[int(lab)]}", f"moving {MOTION_CLASSES[int(lab)]}"]}
            for p, lab in rows
        ]  # fmt: skip
    (tmp_path / "train.json").write_text(json.dumps(entries["train"]))
    (tmp_path / "test.json").write_text(json.dumps(entries["val"][:4]))
    args = add_multimodal_args(argparse.ArgumentParser()).parse_args(
        ["--bpe_path", str(make_bpe(["a", "square", "moving", *MOTION_CLASSES])), "--train_file", str(tmp_path / "train.json"),
         "--test_file", str(tmp_path / "test.json"), "--num_frames", "8", "--clip_frames", "4", "--input_size", "32",
         "--max_txt_l", "8", "--fusion_depth", "1", "--decoder_layers", "1", "--batch_size", "2", "--epochs", "1",
         "--max_updates_per_epoch", "2", "--num_workers", "0", "--lr", "1e-3", "--warmup_epochs", "0",
         "--output_dir", str(tmp_path / "out"), "--device", "cpu", *objectives]
    )  # fmt: skip
    results = run_multimodal_pretraining(args)
    (record,) = results["history"]
    assert torch.isfinite(torch.tensor(record["train_loss"])) and record["train_loss"] > 0
    (checkpoint,) = list((tmp_path / "out").glob("checkpoint-*"))
    saved = unwrap_state_dict(load_state_dict_file(checkpoint), "model|module|state_dict")
    heads = ("mlm_score.decoder.weight", "vtm_score.fc.weight", "pooler.dense.weight")
    assert all((name in saved) == bool(objectives) for name in heads)
    if objectives:
        # The same seed rebuilds the initial weights: two updates moved every head.
        seed_everything(args.seed)
        initial = build_multimodal_from_args(args).state_dict()
        frozen = "mae_video.blocks.0.attn.qkv.weight"  # the frozen stream: the rebuild is the start
        assert torch.equal(saved[frozen], initial[frozen])
        assert all(not torch.equal(saved[name], initial[name]) for name in heads)
    # 4 videos x 2 captions: every recall is a multiple of 100/8 (t2v) or 100/4 (v2t).
    assert results["t2v_r10"] == 100.0 and results["v2t_r10"] == 100.0
    assert (results["t2v_r1"] * 8 / 100).is_integer() and (results["v2t_r1"] * 4 / 100).is_integer()
