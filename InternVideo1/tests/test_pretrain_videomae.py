"""VideoMAE: released key layouts, masking, targets, attention maths, loading, training smoke runs."""

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from internvideo1.losses import mae_loss, mae_targets
from internvideo1.models import videomae as vm
from internvideo1.models._factory import register_factory
from internvideo1.pretrain.videomae import (
    add_videomae_finetune_args,
    add_videomae_linear_args,
    add_videomae_pretraining_args,
    build_finetune_model,
    build_linear_probe_model,
    load_finetune_pretrained,
    run_videomae_pretraining,
)
from ivtools.checkpoint import save_state_dict_file
from ivtools.data.masking import RandomMaskGenerator, TubeMaskGenerator
from ivtools.train.classification import add_classification_args, run_classification

SPEC = json.loads((Path(__file__).parent / "data" / "internvideo1_videomae_keys.json").read_text())

TINY_PRETRAIN = {
    "img_size": 32,
    "patch_size": 16,
    "encoder_embed_dim": 32,
    "encoder_depth": 2,
    "encoder_num_heads": 4,
    "decoder_num_classes": 3 * 2 * 16 * 16,
    "decoder_embed_dim": 16,
    "decoder_depth": 1,
    "decoder_num_heads": 2,
    "qkv_bias": True,
    "num_frames": 4,
}
TINY_FINETUNE = {
    "img_size": 32,
    "patch_size": 16,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 4,
    "qkv_bias": True,
    "all_frames": 4,
}


def _tiny_pretrain(**kw):
    return vm.PretrainVisionTransformer(**{**TINY_PRETRAIN, **kw})


register_factory(
    "test_tiny_pretrain_mae",
    __name__,
    lambda **kw: _tiny_pretrain(**{k: v for k, v in kw.items() if k not in ("img_size", "num_frames")}),
)
register_factory(
    "test_tiny_videomae_vit",
    __name__,
    lambda **kw: vm.VisionTransformer(
        **{**TINY_FINETUNE, **{k: v for k, v in kw.items() if k not in ("img_size", "all_frames")}}
    ),
)


@pytest.mark.parametrize("name", sorted(SPEC))
def test_released_key_layout(name):
    kwargs = {"decoder_depth": 4} if name.startswith("pretrain") else {"num_classes": 400, "all_frames": 16}
    with torch.device("meta"):
        model = timm.create_model(vm.resolve_finetune_name(name), **kwargs)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == SPEC[name]["keys"]


def test_pretrain_videomae_aliases_match_original_names():
    with torch.device("meta"):
        a = timm.create_model("pretrain_videomae_small_patch16_224", decoder_depth=4)
    assert {k: list(v.shape) for k, v in a.state_dict().items()} == SPEC["pretrain_mae_small_patch16_224"][
        "keys"
    ]


def test_tube_mask_exact_count_and_tubes():
    gen = TubeMaskGenerator((8, 14, 14), 0.9)
    for seed in range(3):
        mask = gen(np.random.default_rng(seed)).reshape(8, 14, 14)
        assert mask.sum() == 8 * int(0.9 * 196) == gen.num_masked
        # Every time step hides the same spatial positions.
        assert (mask == mask[:1]).all()
    assert not np.array_equal(gen(np.random.default_rng(0)), gen(np.random.default_rng(1)))


def test_random_mask_exact_count():
    gen = RandomMaskGenerator((4, 7, 7), 0.75)
    mask = gen(np.random.default_rng(0))
    assert mask.sum() == int(0.75 * 196) and mask.shape == (196,)
    with pytest.raises(ValueError, match="mask_ratio"):
        TubeMaskGenerator((2, 2, 2), 1.0)


def test_normalised_targets_against_loop_reference():
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    video = torch.randn(2, 3, 4, 8, 12)
    out = mae_targets(video, patch_size=4, tubelet_size=2, mean=mean, std=std)
    pixels = video * torch.tensor(std).view(1, 3, 1, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1, 1)
    rows = []
    for b in range(2):
        per_sample = []
        for t in range(2):
            for y in range(2):
                for x in range(3):
                    cube = pixels[b, :, 2 * t : 2 * t + 2, 4 * y : 4 * y + 4, 4 * x : 4 * x + 4]
                    flat = cube.permute(1, 2, 3, 0).reshape(-1, 3)  # (dt, dy, dx) x c
                    normed = (flat - flat.mean(0)) / (flat.std(0, unbiased=True) + 1e-6)
                    per_sample.append(normed.reshape(-1))
        rows.append(torch.stack(per_sample))
    torch.testing.assert_close(out, torch.stack(rows), rtol=1e-4, atol=1e-4)
    raw = mae_targets(video, 4, 2, mean, std, normalize_target=False)
    torch.testing.assert_close(raw[0, 0, :3], pixels[0, :, 0, 0, 0])


def test_attention_matches_naive_reference():
    attn = vm.Attention(16, num_heads=4, qkv_bias=True)
    torch.nn.init.normal_(attn.q_bias)
    torch.nn.init.normal_(attn.v_bias)
    x = torch.randn(2, 5, 16)
    w = attn.qkv.weight
    q = x @ w[:16].t() + attn.q_bias
    k = x @ w[16:32].t()  # k has no bias
    v = x @ w[32:].t() + attn.v_bias
    split = lambda t: t.view(2, 5, 4, 4).transpose(1, 2)  # noqa: E731
    weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / 2.0, dim=-1)
    ref = attn.proj((weights @ split(v)).transpose(1, 2).reshape(2, 5, 16))
    torch.testing.assert_close(attn(x), ref, rtol=1e-5, atol=1e-5)


def test_pretrain_forward_ignores_masked_pixels_and_backpropagates():
    model = _tiny_pretrain().eval()
    mask = torch.from_numpy(
        np.stack([TubeMaskGenerator((2, 2, 2), 0.5)(np.random.default_rng(s)) for s in (0, 1)])
    )
    video = torch.randn(2, 3, 4, 32, 32)
    out = model(video, mask)
    assert out.shape == (2, 4, 3 * 2 * 16 * 16)
    # Changing the pixels of hidden tubelets must not change the prediction.
    grid = mask.view(2, 2, 2, 2)
    edited = video.clone()
    for b, t, y, x in grid.nonzero().tolist():
        edited[b, :, 2 * t : 2 * t + 2, 16 * y : 16 * y + 16, 16 * x : 16 * x + 16] = 5.0
    torch.testing.assert_close(model(edited, mask), out)
    model.train()
    loss = mae_loss(model(video, mask), mae_targets(video, 16, 2), mask)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with pytest.raises(ValueError, match="same number"):
        model(video, torch.tensor([[True] * 4 + [False] * 4, [True] * 3 + [False] * 5]))


def test_finetune_loads_pretraining_checkpoint(tmp_path):
    pretrain = _tiny_pretrain()
    path = tmp_path / "checkpoint-799.pth"
    save_state_dict_file({"model": pretrain.state_dict(), "epoch": 799}, path)
    reloaded = _tiny_pretrain()
    vm.load_videomae_checkpoint(reloaded, path)
    torch.testing.assert_close(reloaded.state_dict(), pretrain.state_dict())

    model = vm.VisionTransformer(**TINY_FINETUNE, num_classes=5)
    head = model.head.weight.clone()
    vm.load_videomae_checkpoint(model, path)
    torch.testing.assert_close(model.blocks[1].attn.qkv.weight, pretrain.encoder.blocks[1].attn.qkv.weight)
    torch.testing.assert_close(model.patch_embed.proj.bias, pretrain.encoder.patch_embed.proj.bias)
    torch.testing.assert_close(model.head.weight, head)  # no head in a pretraining checkpoint


def test_finetune_checkpoint_head_kinetics710_to_400(tmp_path):
    src = vm.VisionTransformer(**TINY_FINETUNE, num_classes=710)
    path = tmp_path / "k710.pth"
    save_state_dict_file({"module": src.state_dict()}, path)
    model = vm.VisionTransformer(**TINY_FINETUNE, num_classes=400)
    vm.load_videomae_checkpoint(model, path)
    torch.testing.assert_close(model.head.weight, src.head.weight[:400])
    save_state_dict_file({"model": {"blocks.0.norm1.weight": torch.ones(32)}}, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match="lacks"):
        vm.load_videomae_checkpoint(model, tmp_path / "bad.pth")


def test_pos_embed_resampled_for_other_clip_sizes():
    base = vm.VisionTransformer(**{**TINY_FINETUNE, "all_frames": 16, "img_size": 224}, num_classes=0)
    ref = vm.sinusoid_table(8 * 14 * 14, 32)
    torch.testing.assert_close(base.pos_embed, ref)
    ref_table = ref[0, :, 5]
    assert math.isclose(float(ref_table[1]), math.cos(1 / 10000 ** (4 / 32)), rel_tol=1e-6)
    other = vm.VisionTransformer(**{**TINY_FINETUNE, "all_frames": 8, "img_size": 224}, num_classes=0)
    assert other.pos_embed.shape == (1, 4 * 14 * 14, 32)


def _classification_dirs(tmp_path, motion_dataset):
    data = tmp_path / "lists"
    data.mkdir()
    for split, source in (("train", "train"), ("val", "val"), ("test", "val")):
        (data / f"{split}.csv").write_text(Path(motion_dataset[source]).read_text())
    return data


def test_pretraining_two_iterations_on_videos(tmp_path, motion_dataset):
    args = add_videomae_pretraining_args(argparse.ArgumentParser()).parse_args(
        [
            "--data_path", str(motion_dataset["train"]), "--prefix", str(motion_dataset["root"]),
            "--model", "test_tiny_pretrain_mae", "--input_size", "32", "--num_frames", "4",
            "--sampling_rate", "2", "--mask_ratio", "0.5", "--batch_size", "2", "--epochs", "1",
            "--max_updates_per_epoch", "2", "--num_workers", "0", "--warmup_epochs", "0",
            "--output_dir", str(tmp_path / "out"), "--device", "cpu",
        ]
    )  # fmt: skip
    history = run_videomae_pretraining(args)
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"])
    assert (tmp_path / "out" / "checkpoint-0.pth").is_file()


def test_finetuning_two_iterations_on_videos(tmp_path, motion_dataset):
    data = _classification_dirs(tmp_path, motion_dataset)
    parser = add_classification_args(add_videomae_finetune_args(argparse.ArgumentParser()))
    args = parser.parse_args(
        [
            "--model", "test_tiny_videomae_vit", "--data_path", str(data), "--prefix", str(motion_dataset["root"]),
            "--nb_classes", "4", "--num_frames", "4", "--input_size", "32", "--short_side_size", "32",
            "--batch_size", "2", "--epochs", "1", "--max_updates_per_epoch", "2", "--num_workers", "0",
            "--test_num_segment", "1", "--test_num_crop", "1", "--num_sample", "1", "--aa", "none",
            "--reprob", "0", "--mixup", "0", "--cutmix", "0", "--device", "cpu", "--disable_eval_during_finetuning",
        ]
    )  # fmt: skip
    results = run_classification(args, build_finetune_model, load_finetune_pretrained)
    assert 0.0 <= results["test_top1"] <= 100.0 and math.isfinite(results["history"][0]["train_loss"])


def test_linear_probing_trains_only_the_head(tmp_path, motion_dataset):
    pretrain = _tiny_pretrain()
    ckpt = tmp_path / "checkpoint-799.pth"
    save_state_dict_file({"model": pretrain.state_dict()}, ckpt)
    data = _classification_dirs(tmp_path, motion_dataset)
    args = add_videomae_linear_args(argparse.ArgumentParser()).parse_args(
        [
            "--model", "test_tiny_videomae_vit", "--data_path", str(data), "--prefix", str(motion_dataset["root"]),
            "--finetune", str(ckpt), "--nb_classes", "4", "--num_frames", "4", "--input_size", "32",
            "--short_side_size", "32", "--batch_size", "2", "--epochs", "1", "--max_updates_per_epoch", "2",
            "--num_workers", "0", "--test_num_segment", "1", "--test_num_crop", "1", "--num_sample", "1",
            "--warmup_epochs", "0", "--device", "cpu", "--disable_eval_during_finetuning",
        ]
    )  # fmt: skip
    built, loaded = [], {}

    def build(a):
        built.append(build_linear_probe_model(a))
        return built[0]

    def load(model, path, a):
        load_finetune_pretrained(model, path, a)
        loaded.update({k: v.clone() for k, v in model.state_dict().items()})

    results = run_classification(args, build, load)
    assert math.isfinite(results["history"][0]["train_loss"]) and 0.0 <= results["test_top1"] <= 100.0
    model = built[0]
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    # The encoder is the pretraining checkpoint's, bit for bit, after two SGD updates; the head moved.
    after = model.state_dict()
    torch.testing.assert_close(loaded["blocks.1.attn.qkv.weight"], pretrain.encoder.blocks[1].attn.qkv.weight)
    for key, value in loaded.items():
        if key.startswith("head."):
            assert not torch.equal(after[key], value), key
        else:
            assert torch.equal(after[key], value), key


def test_patch_embed_tokens_are_the_convolution_in_raster_order():
    from internvideo1.models.videomae import PatchEmbed

    torch.manual_seed(0)
    embed = PatchEmbed(img_size=32, patch_size=16, embed_dim=8, num_frames=4, tubelet_size=2).double()
    x = torch.randn(2, 3, 4, 32, 32, dtype=torch.float64)
    conv = torch.nn.functional.conv3d(x, embed.proj.weight, embed.proj.bias, stride=(2, 16, 16))
    torch.testing.assert_close(embed(x), conv.flatten(2).transpose(1, 2), rtol=1e-12, atol=1e-12)
