"""Forward/backward of every variant at reduced size, and the behaviour of heads, masks and teachers."""

import math

import pytest
import timm
import torch
import torch.nn.functional as F

import internvideo2  # noqa: F401
from internvideo2.models import (
    DistillInternVideo2,
    InternVideo2Encoder,
    InternVideo2Stage2Vision,
    InternVideo2Teacher,
    InternVLCLIPVision,
    PretrainInternVideo2,
    VideoMAEv2Encoder,
    extract_features,
)
from internvideo2.models.teachers import sinusoid_table

ARCH = {"img_size": 28, "patch_size": 14, "embed_dim": 32, "depth": 3, "num_heads": 2, "mlp_ratio": 2.0}
HEAD = {"attn_pool_num_heads": 2, "clip_embed_dim": 16}
TINY = {**ARCH, **HEAD, "num_frames": 4}
OFF = {"use_flash_attn": False, "use_fused_rmsnorm": False, "use_fused_mlp": False}
N = 4 * 2 * 2  # patch tokens of a TINY video


def video(frames: int = 4, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, frames, 28, 28)


def mask_keeping(keep: list[int], batch: int = 2) -> torch.Tensor:
    """Bool (B, 1 + N), True = dropped; the class token and the patches in ``keep`` stay."""
    mask = torch.ones(batch, 1 + N, dtype=torch.bool)
    mask[:, 0] = False
    mask[:, [1 + k for k in keep]] = False
    return mask


def backward_reaches_everything(model: torch.nn.Module, loss: torch.Tensor) -> None:
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []


@pytest.mark.parametrize("prefix", ["internvideo2", "internvideo2_ap", "internvideo2_cat"])
@pytest.mark.parametrize("fused", [False, True])
def test_classifier_forward_backward(prefix, fused):
    flags = dict.fromkeys(OFF, fused)
    model = timm.create_model(
        f"{prefix}_small_patch14_224", num_classes=7, drop_path_rate=0.1, **TINY, **flags
    )
    logits = model(video())
    assert logits.shape == (2, 7)
    backward_reaches_everything(model, logits.square().sum())


@pytest.mark.parametrize("merge", ["cls_avg1", "cls_avgN", "cls_avg1_proj", "cls_avgN_proj"])
@pytest.mark.parametrize("norm", ["kaiming_BN", "BN", "LN"])
def test_concat_head_summaries(merge, norm):
    model = timm.create_model(
        "internvideo2_cat_small_patch14_224",
        num_classes=3,
        merge_method=merge,
        merge_norm=norm,
        **TINY,
        **OFF,
    ).eval()
    x = video()
    tokens = model.forward_features(x)
    cls, patches = tokens[:, :1], tokens[:, 1:]
    if "avg1" in merge:
        summaries = torch.cat([cls, patches.mean(1, keepdim=True)], 1)
    else:  # per-frame means through Linear + GELU
        summaries = model.down(torch.cat([cls, patches.reshape(2, 4, 4, -1).mean(2)], 1))
    if norm == "LN":
        feats = model.down_norm(summaries).flatten(1)
    else:  # BatchNorm over channels, flattened channel-major as the original does
        feats = model.down_norm(summaries.transpose(1, 2)).flatten(1)
    if merge.endswith("_proj"):
        feats = torch.cat([feats, model.fc_norm(model.clip_projector(tokens))], 1)
    torch.testing.assert_close(model(x), model.head(feats))


def test_attentive_probe_starts_as_the_plain_classifier():
    plain = timm.create_model("internvideo2_small_patch14_224", num_classes=3, **TINY, **OFF).eval()
    probe = timm.create_model("internvideo2_ap_small_patch14_224", num_classes=3, **TINY, **OFF).eval()
    probe.load_state_dict(plain.state_dict(), strict=False)
    x = video()
    torch.testing.assert_close(probe(x), plain(x))  # extra_mlp's last layer is zero at init
    torch.nn.init.normal_(probe.extra_mlp[1].fc2.weight)
    assert not torch.allclose(probe(x), plain(x))


def test_head_init_scale_and_sincos_pos_embed():
    model = timm.create_model("internvideo2_small_patch14_224", num_classes=3, init_scale=0.0, **TINY, **OFF)
    assert model.head.weight.abs().max() == 0
    # token (t=1, h=0, w=1): first quarter sin(t * omega), then the 2D table of (h, w) = (0, 1)
    row = model.pos_embed[0, 1 + 1 * 4 + 0 * 2 + 1]
    omega = 1.0 / 10000 ** (torch.arange(4) / 4.0)
    torch.testing.assert_close(row[:4], torch.sin(1.0 * omega))
    torch.testing.assert_close(row[4:8], torch.cos(1.0 * omega))
    assert torch.all(model.pos_embed[0, 0] == 0)


def test_layer_decay_groups_put_the_head_last():
    from timm.optim import param_groups_layer_decay

    model = timm.create_model("internvideo2_small_patch14_224", num_classes=3, **TINY, **OFF)
    groups = param_groups_layer_decay(model, weight_decay=0.05, layer_decay=0.5)
    scale = {
        n: g["lr_scale"]
        for g in groups
        for n, p in model.named_parameters()
        if any(p is q for q in g["params"])
    }
    assert (
        scale["head.weight"] == scale["clip_projector.cross_attn.q.weight"] == scale["fc_norm.weight"] == 1.0
    )
    assert scale["blocks.2.mlp.fc1.weight"] == 0.5
    assert scale["blocks.0.attn.qkv.weight"] == 0.5**3
    assert scale["pos_embed"] == scale["patch_embed.proj.weight"] == scale["cls_token"] == 0.5**4
    assert model.get_num_layers() == 3
    assert [model.get_layer_id(n) for n in ("cls_token", "blocks.1.ls1.gamma", "head.bias")] == [0, 2, 4]
    assert model.no_weight_decay() == {"cls_token", "pos_embed"}


def test_separable_pos_embed():
    model = timm.create_model(
        "internvideo2_small_patch14_224", num_classes=3, sep_pos_embed=True, **TINY, **OFF
    )
    assert {"pos_embed_spatial", "pos_embed_temporal", "pos_embed_cls"} <= model.no_weight_decay()
    table = model.pos_embed_table()
    t, hw = 2, 3  # frame 2, spatial position 3
    torch.testing.assert_close(
        table[0, 1 + t * 4 + hw], model.pos_embed_spatial[0, hw] + model.pos_embed_temporal[0, t]
    )
    assert model(video()).shape == (2, 3)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    kwargs = {"num_classes": 3, "drop_path_rate": 0.0, **TINY, **OFF}
    plain = timm.create_model("internvideo2_small_patch14_224", **kwargs)
    ckpt = timm.create_model(
        "internvideo2_small_patch14_224", use_checkpoint=True, checkpoint_num=2, **kwargs
    )
    ckpt.load_state_dict(plain.state_dict())
    assert [b.with_cp for b in ckpt.blocks] == [True, True, False]
    x = video()
    plain(x).sum().backward()
    ckpt(x).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_visible_tokens_follow_the_mask():
    model = timm.create_model(
        "distill_internvideo2_small_patch14_224", **TINY, **OFF, clip_teacher_embed_dim=24
    ).eval()
    keep = [0, 5, 6, 15]
    x = video()
    clip_align, final_align = model(x, mask_keeping(keep))
    assert clip_align.shape == (1, 2, 1 + len(keep), 24)
    # Independent path: run the blocks on the hand-selected tokens.
    tokens = model.embed(x)[:, [0] + [1 + k for k in keep]]
    hidden, states = model.run_blocks(tokens, [2])
    table = model.clip_pos_embed[:, [0] + [1 + k for k in keep]]
    expected = F.normalize(model.clip_decoder[0].norm(model.clip_decoder[0].head(states[0] + table)), dim=-1)
    torch.testing.assert_close(clip_align[0], expected)
    pooled = model.clip_projector(hidden)
    expected_final = F.normalize(model.final_clip_decoder.norm(model.final_clip_decoder.head(pooled)), dim=-1)
    torch.testing.assert_close(final_align, expected_final)
    with pytest.raises(ValueError, match="same number"):
        bad = mask_keeping(keep)
        bad[1, 1 + 1] = False
        model(x, bad)


@pytest.mark.parametrize("fused", [False, True])
def test_pretrain_student_outputs(fused):
    flags = dict.fromkeys(OFF, fused)
    model = PretrainInternVideo2(
        **TINY,
        **flags,
        clip_teacher_embed_dim=24,
        clip_teacher_final_dim=12,
        mae_teacher_embed_dim=20,
        clip_return_layer=2,
        mae_return_layer=2,
        mae_student_return_interval=2,
    )
    assert model.clip_return_index == [2, 1] and model.mae_return_index == [2, 0]
    keep = [1, 2, 9, 12]
    clip_align, final_align, mae_align = model(video(), mask_keeping(keep))
    assert clip_align.shape == (2, 2, 5, 24)
    assert final_align.shape == (2, 12)
    assert mae_align.shape == (2, 2, 4, 20)
    torch.testing.assert_close(clip_align.norm(dim=-1), torch.ones(2, 2, 5))
    backward_reaches_everything(model, clip_align.sum() + mae_align.sum() + final_align.sum())


def test_pretrain_mae_alignment_by_hand():
    model = PretrainInternVideo2(
        **TINY, **OFF, clip_teacher_embed_dim=24, mae_teacher_embed_dim=20, mae_return_layer=2
    ).eval()
    keep = [3, 4, 7, 8]
    x = video(batch=1)
    _, _, mae_align = model(x, mask_keeping(keep, 1))
    tokens = model.embed(x)[:, [0] + [1 + k for k in keep]]
    _, states = model.run_blocks(tokens, [1])
    decoder = model.mae_decoder[0]
    h = states[0][:, 1:] + model.mae_pos_embed[:, keep]
    h = decoder.head[2](F.gelu(decoder.head[0](h)))
    torch.testing.assert_close(mae_align[0], F.normalize(decoder.norm(h), dim=-1))


def test_stage2_vision_encoder_video_and_image():
    model = InternVideo2Stage2Vision(
        **TINY, **OFF, clip_return_layer=2, sep_image_video_pos_embed=True
    ).eval()
    x_vis, pooled, clip_align, final_align = model(video())
    assert x_vis.shape == (2, 1 + N, 32) and pooled.shape == (2, 16)
    assert clip_align.shape == (2, 2, 1 + N, 3200) and final_align.shape == (2, 768)
    image = video(frames=1)
    x_img = model(image, use_image=True, x_vis_only=True)
    # the image path uses img_pos_embed (a single 2 x 2 frame)
    tokens = (
        torch.cat([model.cls_token.expand(2, -1, -1), model.patch_embed(image).flatten(1, 2)], 1)
        + model.img_pos_embed
    )
    torch.testing.assert_close(x_img, model.run_blocks(tokens)[0])
    x = video()
    early = model(x, x_vis_only=True, x_vis_return_idx=-2)
    block0, block1 = model.blocks[0], model.blocks[1]
    torch.testing.assert_close(early, block1(block0(model.embed(x))[0])[0])


def test_image_pos_table_is_the_time_mean_without_separate_tables():
    model = InternVideo2Stage2Vision(**TINY, **OFF)
    table = model.pos_embed_table(use_image=True)
    torch.testing.assert_close(table[0, 1:], model.pos_embed[0, 1:].reshape(4, 4, -1).mean(0))
    torch.testing.assert_close(table[0, 0], model.pos_embed[0, 0])


def test_distill_student_with_mlp_decoder_and_explicit_indices():
    model = DistillInternVideo2(
        **TINY,
        **OFF,
        clip_teacher_embed_dim=24,
        clip_return_layer=2,
        clip_student_return_index=[0, 2],
        clip_student_decoder="MLP_Decoder",
    )
    assert isinstance(model.clip_decoder[0].head, torch.nn.Sequential)
    clip_align, final_align = model(video())
    assert clip_align.shape == (2, 2, 1 + N, 24) and final_align.shape == (2, 768)
    backward_reaches_everything(model, clip_align.sum() + final_align.sum())


def test_internvideo2_teacher_outputs():
    teacher = InternVideo2Teacher(**TINY, **OFF, clip_return_layer=2).eval()
    states, pooled, attn = teacher(video())
    assert states.shape == (2, 2, 1 + N, 32) and pooled.shape == (2, 16) and attn.shape == (2, N)
    torch.testing.assert_close(pooled.norm(dim=-1), torch.ones(2))
    # attention of the mean query over the tokens, averaged over heads, without the class token
    hidden, _ = teacher.run_blocks(teacher.embed(video()))
    _, full = teacher.clip_projector(hidden, return_attn=True)
    assert torch.all(attn > 0) and torch.all(full[:, 0].sum(-1) - 1 < 1e-5)


def test_internvl_teacher_encodes_frames_as_images():
    teacher = InternVLCLIPVision(**ARCH, **HEAD, **OFF).eval()
    assert not teacher.pos_embed.requires_grad
    x = video(frames=3)
    states, pooled, attn = teacher(x)
    assert states.shape == (1, 2, 1 + 3 * 4, 32) and pooled.shape == (2, 16) and attn.shape == (6, 4)
    # frame 1 alone gives the same patch states as inside the clip
    alone, _, _ = teacher(x[:, :, 1:2])
    torch.testing.assert_close(alone[0, :, 1:], states[0, :, 1 + 4 : 1 + 8])


def test_videomae_teacher():
    teacher = VideoMAEv2Encoder(
        img_size=28, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, all_frames=4, mae_return_layer=2
    ).eval()
    assert teacher.patch_embed.proj.kernel_size == (2, 14, 14)
    assert "pos_embed" not in teacher.state_dict()
    # the released 8 x 16 x 16 sinusoid table resampled to 2 x 2 x 2
    assert teacher.pos_embed.shape == (1, 8, 32)
    angles = [
        2.0,
        2.0,
        2 / 10000 ** (2 / 6),
        2 / 10000 ** (2 / 6),
        2 / 10000 ** (4 / 6),
        2 / 10000 ** (4 / 6),
    ]
    expected = [f(a) for f, a in zip([math.sin, math.cos] * 3, angles)]
    torch.testing.assert_close(sinusoid_table(3, 6)[0, 2], torch.tensor(expected))
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, :4] = True
    states = teacher(video(), mask)
    assert states.shape == (2, 2, 4, 32)
    torch.testing.assert_close(states.norm(dim=-1), torch.ones(2, 2, 4))


def test_videomae_attention_is_per_token_softmax():
    from internvideo2.models.teachers import VideoMAEAttention

    attn = VideoMAEAttention(8, 2).eval()
    torch.nn.init.normal_(attn.q_bias)
    torch.nn.init.normal_(attn.v_bias)
    x = torch.randn(1, 5, 8)
    q, k, v = F.linear(x, attn.qkv.weight).split(8, -1)
    q, v = q + attn.q_bias, v + attn.v_bias
    heads = [
        torch.softmax(q[..., h * 4 : h * 4 + 4] @ k[..., h * 4 : h * 4 + 4].transpose(1, 2) / 2.0, -1)
        @ v[..., h * 4 : h * 4 + 4]
        for h in range(2)
    ]
    torch.testing.assert_close(attn(x), attn.proj(torch.cat(heads, -1)))


def test_extract_features():
    model = timm.create_model(
        "internvideo2_small_patch14_224", num_classes=3, drop_path_rate=0.5, **TINY, **OFF
    )
    x = video()
    pooled, patches = extract_features(model, x)
    assert model.training  # mode restored
    model.eval()
    tokens = model.forward_features(x)
    torch.testing.assert_close(patches, tokens[:, 1:])
    torch.testing.assert_close(pooled, model.clip_projector(tokens))
    with pytest.raises(TypeError):
        extract_features(torch.nn.Linear(2, 2), x)


def test_bad_input_is_named():
    model = InternVideo2Encoder(**TINY, **OFF)
    with pytest.raises(ValueError, match=r"\(B, 3, 4, 28, 28\)"):
        model.embed(video(frames=8))


@pytest.mark.slow
def test_torch_compile():
    model = timm.create_model("internvideo2_small_patch14_224", num_classes=3, **TINY, **OFF).eval()
    x = video()
    torch.testing.assert_close(torch.compile(model)(x), model(x), rtol=1e-4, atol=1e-5)


def test_clip_vision_encoder_forward_on_video_and_image():
    encoder = InternVideo2Encoder(**TINY, **OFF, sep_pos_embed=True)
    encoder.init_weights()
    x = video()
    assert encoder(x).shape == (2, 16)
    image = video(frames=1)
    # images get the class row and the spatial table only (no temporal term), as in the original
    tokens = torch.cat([encoder.cls_token.expand(2, -1, -1), encoder.patch_embed(image).flatten(1, 2)], 1)
    tokens = tokens + torch.cat([encoder.pos_embed_cls, encoder.pos_embed_spatial], 1)
    torch.testing.assert_close(
        encoder(image, use_image=True), encoder.clip_projector(encoder.run_blocks(tokens)[0])
    )
