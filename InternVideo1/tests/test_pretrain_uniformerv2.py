"""UniFormerV2: released key layouts, maths against a reference, checkpoint heads, fine-tuning smoke."""

import argparse
import json
import math
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F

from internvideo1.models import uniformerv2 as uv
from internvideo1.pretrain.uniformerv2 import (
    add_uniformerv2_args,
    build_uniformerv2_model,
    load_uniformerv2_pretrained,
)
from ivtools.checkpoint import add_prefix, save_state_dict_file
from ivtools.train.classification import add_classification_args, run_classification

SPEC = json.loads((Path(__file__).parent / "data" / "internvideo1_uniformerv2_keys.json").read_text())
RELEASED = {
    "uniformerv2_b16_k400_8x224": (
        "uniformerv2_b16",
        {"t_size": 8, "no_lmhra": True, "temporal_downsample": False, "num_classes": 400},
    ),
    "uniformerv2_l14_k400_8x224": (
        "uniformerv2_l14",
        {"t_size": 8, "no_lmhra": True, "temporal_downsample": False, "num_classes": 400},
    ),
    "uniformerv2_l14_336_k400_8x336": (
        "uniformerv2_l14_336",
        {"t_size": 8, "no_lmhra": True, "temporal_downsample": False, "num_classes": 400},
    ),
    "uniformerv2_b16_ssv2_16x224": (
        "uniformerv2_b16",
        {"t_size": 16, "no_lmhra": False, "temporal_downsample": True, "num_classes": 174},
    ),
}
TINY = {
    "input_resolution": 32, "patch_size": 16, "width": 32, "layers": 2, "heads": 4, "t_size": 4, "return_list": [0, 1], "n_layers": 2,
    "n_dim": 32, "n_head": 4, "mlp_dropout": [0.5, 0.5], "num_classes": 5,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_key_layout(name):
    factory, kwargs = RELEASED[name]
    with torch.device("meta"):
        model = timm.create_model(factory, **kwargs)
    got = {f"backbone.{k}": list(v.shape) for k, v in model.state_dict().items()}
    assert got == SPEC[name]["keys"]


def _frame_tokens(model, video):
    """Per-frame CLIP embedding: (N*T, 1 + H*W, C) after ln_pre."""
    n, _, t = video.shape[:3]
    frames = video.transpose(1, 2).reshape(n * t, 3, *video.shape[-2:])
    patches = F.conv2d(frames, model.conv1.weight[:, :, 0], stride=16).flatten(2).transpose(1, 2)
    cls = model.class_embedding.expand(n * t, 1, -1)
    x = torch.cat([cls, patches], 1) + model.positional_embedding
    return F.layer_norm(x, (x.shape[-1],), model.ln_pre.weight, model.ln_pre.bias)


def test_initial_model_is_frame_clip_plus_zero_decoder(clip_blocks_reference):
    """At initialisation the local modules and the decoder add nothing (zero-initialised outputs), so
    the feature is sigmoid(0) = 0.5 times the mean over frames of CLIP's class token."""
    model = uv.UniFormerV2(**TINY, no_lmhra=False, temporal_downsample=False).eval()
    video = torch.randn(2, 3, 4, 32, 32)
    x = clip_blocks_reference(_frame_tokens(model, video), model.transformer.resblocks)
    expected = 0.5 * x[:, 0].reshape(2, 4, -1).mean(1)
    torch.testing.assert_close(model.forward_features(video), expected, rtol=1e-4, atol=1e-4)
    logits = model(video)
    head = model.transformer.proj
    torch.testing.assert_close(logits, head[2](head[0](expected)), rtol=1e-4, atol=1e-4)


def test_decoder_and_local_modules_against_reference(clip_blocks_reference):
    torch.manual_seed(1)
    model = uv.UniFormerV2(
        **{**TINY, "return_list": [1], "n_layers": 1, "mlp_dropout": [0.5]},
        no_lmhra=False,
        double_lmhra=False,
        temporal_downsample=False,
    )
    for p in model.transformer.parameters():
        torch.nn.init.normal_(p, std=0.2)
    lmhra = model.transformer.resblocks[0].lmhra1.pos_embed
    lmhra[0].running_mean.normal_()
    lmhra[0].running_var.uniform_(0.5, 2.0)
    model.eval()
    video = torch.randn(2, 3, 4, 32, 32)
    x = _frame_tokens(model, video)

    def local(x, seq):
        vol = x[:, 1:].reshape(2, 4, 2, 2, 32).permute(0, 4, 1, 2, 3)
        h = F.batch_norm(
            vol, seq[0].running_mean, seq[0].running_var, seq[0].weight, seq[0].bias, eps=seq[0].eps
        )
        h = F.conv3d(h, seq[1].weight, seq[1].bias)
        h = F.conv3d(h, seq[2].weight, seq[2].bias, padding=(1, 0, 0), groups=seq[2].groups)
        h = F.conv3d(h, seq[3].weight, seq[3].bias)
        return torch.cat([x[:, :1], x[:, 1:] + h.permute(0, 2, 3, 4, 1).reshape(8, 4, 32)], 1)

    blocks = model.transformer.resblocks
    x = clip_blocks_reference(local(x, blocks[0].lmhra1.pos_embed), blocks[:1])
    x = clip_blocks_reference(local(x, blocks[1].lmhra1.pos_embed), blocks[1:])
    # dpe: depth-wise 3x3x3 conv on the patch volume, added to the patches.
    dpe = model.transformer.dpe[0]
    vol = x[:, 1:].reshape(2, 4, 2, 2, 32).permute(0, 4, 1, 2, 3)
    pos = F.conv3d(vol, dpe.weight, dpe.bias, padding=1, groups=32).permute(0, 2, 3, 4, 1).reshape(8, 4, 32)
    tokens = torch.cat([x[:, :1], x[:, 1:] + pos], 1).reshape(2, -1, 32)
    dec = model.transformer.dec[0]
    q = model.transformer.temporal_cls_token.expand(2, 1, 32)
    ln = lambda t, m: F.layer_norm(t, (32,), m.weight, m.bias)  # noqa: E731
    kv = ln(tokens, dec.ln_3).transpose(0, 1)
    a, _ = F.multi_head_attention_forward(
        ln(q, dec.ln_1).transpose(0, 1), kv, kv, 32, 4, dec.attn.in_proj_weight, dec.attn.in_proj_bias,
        None, None, False, 0.0, dec.attn.out_proj.weight, dec.attn.out_proj.bias, training=False, need_weights=False,
    )  # fmt: skip
    q = q + a.transpose(0, 1)
    h = dec.mlp.c_fc(ln(q, dec.ln_2))
    q = (q + dec.mlp.c_proj(h * torch.sigmoid(1.702 * h)))[:, 0]
    w = torch.sigmoid(model.transformer.balance)
    expected = (1 - w) * q + w * x[:, 0].reshape(2, 4, 32).mean(1)
    torch.testing.assert_close(model.forward_features(video), expected, rtol=1e-4, atol=1e-4)


def test_temporal_downsample_and_backward():
    model = uv.UniFormerV2(**TINY, no_lmhra=False, temporal_downsample=True)
    assert model.conv1.weight.shape == (32, 3, 3, 16, 16) and model.transformer.t_size == 2
    loss = model(torch.randn(2, 3, 4, 32, 32)).logsumexp(-1).sum()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="expected clips"):
        model(torch.randn(1, 3, 6, 32, 32))


def test_load_released_checkpoint_with_head_rules(tmp_path):
    src = uv.UniFormerV2(**{**TINY, "num_classes": 710}, no_lmhra=True, temporal_downsample=False)
    path = tmp_path / "k710_uniformerv2_b16_8x224.pyth"
    save_state_dict_file(add_prefix(src.state_dict(), "backbone."), path)
    model = uv.UniFormerV2(**{**TINY, "num_classes": 400}, no_lmhra=True, temporal_downsample=False)
    uv.load_uniformerv2_checkpoint(model, path)
    torch.testing.assert_close(model.transformer.proj[2].weight, src.transformer.proj[2].weight[:400])
    torch.testing.assert_close(model.conv1.weight, src.conv1.weight)
    mapped = uv.UniFormerV2(**{**TINY, "num_classes": 3}, no_lmhra=True, temporal_downsample=False)
    uv.load_uniformerv2_checkpoint(mapped, path, label_map=[700, 3, 5])
    torch.testing.assert_close(mapped.transformer.proj[2].bias, src.transformer.proj[2].bias[[700, 3, 5]])
    fresh = uv.UniFormerV2(**{**TINY, "num_classes": 3}, no_lmhra=True, temporal_downsample=False)
    head = fresh.transformer.proj[2].weight.clone()
    uv.load_uniformerv2_checkpoint(fresh, path, delete_head=True)
    torch.testing.assert_close(fresh.transformer.proj[2].weight, head)
    # slowfast training checkpoints wrap the weights in "model_state".
    save_state_dict_file(
        {"model_state": add_prefix(src.state_dict(), "backbone."), "epoch": 3}, tmp_path / "ck.pyth"
    )
    same = uv.UniFormerV2(**{**TINY, "num_classes": 710}, no_lmhra=True, temporal_downsample=False)
    uv.load_uniformerv2_checkpoint(same, tmp_path / "ck.pyth")
    torch.testing.assert_close(same.state_dict(), src.state_dict())


def test_clip_image_weights_are_inflated(tmp_path):
    model = uv.UniFormerV2(**TINY, no_lmhra=False, temporal_downsample=True)
    conv = torch.randn(32, 3, 16, 16)
    block = {
        f"transformer.resblocks.0.{k}": v.clone() + 1
        for k, v in model.transformer.resblocks[0].state_dict().items()
        if "lmhra" not in k
    }
    save_state_dict_file(
        {"visual.conv1.weight": conv, **{f"visual.{k}": v for k, v in block.items()}}, tmp_path / "vit.pth"
    )
    uv.load_clip_into_uniformerv2(model, tmp_path / "vit.pth")
    torch.testing.assert_close(model.conv1.weight[:, :, 1], conv)
    assert model.conv1.weight[:, :, [0, 2]].abs().sum() == 0
    torch.testing.assert_close(
        model.transformer.resblocks[0].ln_1.weight, block["transformer.resblocks.0.ln_1.weight"]
    )


def test_finetuning_two_iterations_on_videos(tmp_path, motion_dataset, monkeypatch):
    data = tmp_path / "lists"
    data.mkdir()
    for split, source in (("train", "train"), ("val", "val"), ("test", "val")):
        (data / f"{split}.csv").write_text(Path(motion_dataset[source]).read_text())
    monkeypatch.setitem(uv.SIZES, "uniformerv2_b16", (32, 16, 32, 2, 4, (0, 1)))
    parser = add_classification_args(add_uniformerv2_args(argparse.ArgumentParser()))
    args = parser.parse_args(
        [
            "--model", "uniformerv2_b16", "--n_layers", "2", "--data_path", str(data), "--prefix", str(motion_dataset["root"]),
            "--data_set", "Kinetics_sparse", "--nb_classes", "4", "--num_frames", "4", "--input_size", "32",
            "--short_side_size", "32", "--batch_size", "2", "--epochs", "1", "--max_updates_per_epoch", "2",
            "--num_workers", "0", "--test_num_segment", "2", "--test_num_crop", "1", "--num_sample", "1",
            "--aa", "none", "--reprob", "0", "--device", "cpu", "--disable_eval_during_finetuning", "--layer_decay", "1.0",
        ]
    )  # fmt: skip
    results = run_classification(args, build_uniformerv2_model, load_uniformerv2_pretrained)
    assert math.isfinite(results["history"][0]["train_loss"]) and 0.0 <= results["test_top1"] <= 100.0
